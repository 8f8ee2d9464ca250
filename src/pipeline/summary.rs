//! Layer summaries: what a build learns about a layer while writing it,
//! cached with the layer so that a hit needs no decompression: its effect
//! on the view and what the seal's content scan found in it.
//!
//! A summary's body is its changes, then its findings (postcard):
//!
//! ```text
//! varint count
//! count changes, those that hide lower paths first, each:
//!   its path as the bytes it shares with the path before it and the
//!   rest (front coding: a layer's paths come sorted, and most of each
//!   is the one before), then what the change puts there
//! findings
//! ```
//!
//! Built one change at a time and applied one change at a time, so that a
//! large layer's changes are never all held at once, and the encoding
//! held meanwhile is a fraction of their size.

use std::borrow::Cow;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::rootfs::changes::Changes;
use crate::rootfs::meta::{ImagePath, shared_prefix};
use crate::rootfs::{Change, Node, View};
use crate::seal;
use crate::seal::scan::Findings;
use crate::store::cache::Summary;

/// A layer's summary, decoded whole: for comparing one a registry gave
/// with what the layer reads back as.
#[derive(Debug, PartialEq)]
pub struct LayerSummary {
    pub changes: Vec<Change>,
    pub findings: Findings,
}

impl LayerSummary {
    /// What a summary's meaning depends on: its own shape and the seal
    /// policy and scanner that made its findings. A summary from another
    /// version is read back, never trusted.
    pub fn version() -> String {
        format!(
            "summary 5, layer reading {}, seal policy {}, scanner {}",
            crate::rootfs::READER_VERSION,
            seal::POLICY_VERSION,
            seal::scan::SCANNER_VERSION
        )
    }

    /// A layer's whole summary body, `changes` and `findings`, encoded
    /// into `out`; None if it could not be.
    pub fn encode<'a, I, W>(changes: I, findings: &Findings, out: W) -> Option<W>
    where
        I: IntoIterator<Item = &'a Change>,
        I::IntoIter: Clone,
        W: Write,
    {
        Self::end_with(Self::encode_changes(changes, out)?, findings)
    }

    /// `changes` encoded into `out` as a summary's changes part, those
    /// that hide lower paths first (the view applies them first in any
    /// case); None if they could not be.
    pub fn encode_changes<'a, I, W>(changes: I, out: W) -> Option<W>
    where
        I: IntoIterator<Item = &'a Change>,
        I::IntoIter: Clone,
        W: Write,
    {
        let changes = changes.into_iter();
        let mut encoded = EncodedChanges::new(changes.clone().count(), out);
        for change in hiding_first(changes) {
            encoded.push(change);
        }
        encoded.finish()
    }

    /// Ends the body `out` holds the changes part of (see
    /// [`EncodedChanges`]) with `findings`.
    pub fn end_with<W: Write>(out: W, findings: &Findings) -> Option<W> {
        postcard::to_io(findings, out).ok()
    }

    /// `summary` decoded whole, if it was made by this version and is
    /// well formed.
    pub fn decode(summary: &Summary) -> Option<LayerSummary> {
        if summary.version != Self::version() {
            return None;
        }
        let mut changes = Vec::new();
        let findings = each_change(&summary.body, |c| changes.push(c))?;
        Some(LayerSummary { changes, findings })
    }

    /// The findings of `summary`, if it was made by this version and is
    /// whole: what serving it needs before its changes are applied, if
    /// they ever are ([`LayerSummary::apply_checked`]).
    pub fn check_current(summary: &Summary) -> Option<Findings> {
        if summary.version != Self::version() {
            return None;
        }
        check_body(&summary.body)
    }

    /// Applies `summary`, checked by [`LayerSummary::check_current`], to
    /// `view` as its next layer. Each change goes into the view as it is
    /// decoded, never all of them held at once.
    pub fn apply_checked(summary: &Summary, view: &mut View) -> Option<()> {
        apply_part(&summary.body, view).map(|_| ())
    }
}

/// A layer's changes encoded one at a time into a summary's changes part,
/// written to `out` as they come: their count, then each in turn, its path
/// front-coded on the one before. The caller hands over those that hide
/// lower paths first.
pub struct EncodedChanges<W> {
    out: Option<W>,
    last: String,
}

impl<W: Write> EncodedChanges<W> {
    pub fn new(count: usize, out: W) -> EncodedChanges<W> {
        EncodedChanges {
            out: postcard::to_io(&count, out).ok(),
            last: String::new(),
        }
    }

    pub fn push(&mut self, change: &Change) {
        let text = path_of(change).as_rel();
        let shared = shared_prefix(&self.last, text);
        let rest = &text[shared..];
        let filed = match change {
            Change::Put(_, node, content) => Filed::Put {
                shared,
                rest,
                node: Cow::Borrowed(node),
                content: content.as_deref().map(Cow::Borrowed),
            },
            Change::Whiteout(_) => Filed::Whiteout { shared, rest },
            Change::Opaque(_) => Filed::Opaque { shared, rest },
        };
        self.out = self
            .out
            .take()
            .and_then(|out| postcard::to_io(&filed, out).ok());
        self.last.truncate(shared);
        self.last.push_str(rest);
    }

    /// Where the changes went; None if one did not encode or the writing
    /// failed.
    pub fn finish(self) -> Option<W> {
        self.out
    }
}

/// A change as a summary files it.
#[derive(Serialize, Deserialize)]
enum Filed<'a> {
    Put {
        shared: usize,
        rest: &'a str,
        node: Cow<'a, Node>,
        content: Option<Cow<'a, [u8]>>,
    },
    Whiteout {
        shared: usize,
        rest: &'a str,
    },
    Opaque {
        shared: usize,
        rest: &'a str,
    },
}

fn path_of(change: &Change) -> &ImagePath {
    match change {
        Change::Put(path, ..) | Change::Whiteout(path) | Change::Opaque(path) => path,
    }
}

/// `changes` with those that hide lower paths (whiteouts, opaque
/// whiteouts) first, each group in its order.
pub fn hiding_first<'a, I>(changes: I) -> impl Iterator<Item = &'a Change>
where
    I: IntoIterator<Item = &'a Change>,
    I::IntoIter: Clone,
{
    let changes = changes.into_iter();
    let hides = |c: &&Change| !matches!(c, Change::Put(..));
    changes
        .clone()
        .filter(hides)
        .chain(changes.filter(move |c| !hides(c)))
}

/// A change placed in layer `index` of the view.
pub fn at_layer(change: Change, index: usize) -> Change {
    match change {
        Change::Put(path, node, content) => Change::Put(
            path,
            Node {
                layer: index,
                ..node
            },
            content,
        ),
        other => other,
    }
}

/// Decodes a summary's body, handing each change to `each` in order, and
/// returns its findings: None unless it decodes whole, with nothing after
/// it, every path canonical and sharing no more than the path before it
/// has, and no hiding change after a put (which the view would apply
/// first).
fn each_change(body: &[u8], each: impl FnMut(Change)) -> Option<Findings> {
    whole(each_change_in(body, each)?)
}

/// [`each_change`] for the body of one layer's summary at the start of
/// `part`: its findings, and what follows it.
fn each_change_in(part: &[u8], mut each: impl FnMut(Change)) -> Option<(Findings, &[u8])> {
    each_filed(part, |path, filed| {
        let path = ImagePath::from_stored(path)?;
        each(match filed {
            Filed::Put { node, content, .. } => {
                Change::Put(path, node.into_owned(), content.map(Cow::into_owned))
            }
            Filed::Whiteout { .. } => Change::Whiteout(path),
            Filed::Opaque { .. } => Change::Opaque(path),
        });
        Some(())
    })
}

/// Applies the body of one layer's summary at the start of `part` to
/// `view` as its next layer, a change at a time as it is decoded: its
/// findings, and what follows it. Checked first (see [`check_part`]).
fn apply_part<'b>(part: &'b [u8], view: &mut View) -> Option<(Findings, &'b [u8])> {
    let layer = view.layer_count();
    let found = each_change_in(part, |c| view.apply_one(at_layer(c, layer)))?;
    view.end_layer();
    Some(found)
}

/// [`each_change`]'s checks alone, its findings if they pass: no change
/// is made of each entry (nor a path allocated) only to be dropped.
fn check_body(body: &[u8]) -> Option<Findings> {
    whole(check_part(body)?)
}

/// [`check_body`] for the body of one layer's summary at the start of
/// `part`: its findings, and what follows it.
fn check_part(part: &[u8]) -> Option<(Findings, &[u8])> {
    each_filed(part, |path, _| ImagePath::is_stored(path).then_some(()))
}

/// The findings of a body decoded, if nothing follows them.
fn whole((findings, after): (Findings, &[u8])) -> Option<Findings> {
    after.is_empty().then_some(findings)
}

/// Decodes the body of one layer's summary at the start of `part`,
/// handing each change's path (whole again) and what is filed with it to
/// `each`, which may refuse it, and returns the findings and what follows
/// them: None unless every path shares no more than the path before it
/// has, no hiding change comes after a put, and `each` takes every change.
fn each_filed<'b>(
    part: &'b [u8],
    mut each: impl FnMut(&str, Filed<'b>) -> Option<()>,
) -> Option<(Findings, &'b [u8])> {
    let (count, mut rest): (usize, _) = postcard::take_from_bytes(part).ok()?;
    let mut last = String::new();
    let mut putting = false;
    for _ in 0..count {
        let (filed, after) = postcard::take_from_bytes::<Filed>(rest).ok()?;
        rest = after;
        let (Filed::Put { shared, rest, .. }
        | Filed::Whiteout { shared, rest }
        | Filed::Opaque { shared, rest }) = &filed;
        if !last.is_char_boundary(*shared) {
            return None;
        }
        last.truncate(*shared);
        last.push_str(rest);
        match filed {
            Filed::Put { .. } => putting = true,
            _ if putting => return None,
            _ => {}
        }
        each(&last, filed)?;
    }
    postcard::take_from_bytes::<Findings>(rest).ok()
}

/// What reading a base taught a build, kept in the cache so that a warm
/// build on a real base reads no base layer: the count of its layers, then
/// each one's summary body (its changes, front-coded, and what the seal's
/// content scan found in it), bottom first. Written a layer at a time as
/// the base is read, and applied a change at a time: a base of hundreds of
/// thousands of entries is never held as changes beside its view.
pub struct BaseSummary<W> {
    out: Option<W>,
}

/// What a base summary's meaning depends on: its shape, how layers are
/// read, and the seal policy and scanner that made its findings.
pub fn base_version() -> String {
    format!(
        "base summary 3, layer reading {}, seal policy {}, scanner {}",
        crate::rootfs::READER_VERSION,
        seal::POLICY_VERSION,
        seal::scan::SCANNER_VERSION
    )
}

impl<W: Write> BaseSummary<W> {
    /// A summary of `count` layers, written to `out`.
    pub fn new(count: usize, out: W) -> BaseSummary<W> {
        BaseSummary {
            out: postcard::to_io(&count, out).ok(),
        }
    }

    /// Adds the next layer: its changes, in its order, and its findings.
    pub fn add(&mut self, changes: &Changes, findings: &Findings) {
        self.out = self
            .out
            .take()
            .and_then(|out| LayerSummary::encode(changes.iter(), findings, out));
    }

    /// Where the summary went; None if a layer did not encode or the
    /// writing failed.
    pub fn finish(self) -> Option<W> {
        self.out
    }
}

/// Each layer's findings, bottom first, of the base summary `summary` (see
/// [`BaseSummary`]), if it was made by this version and holds `count`
/// layers whole; its changes are applied, if ever, by [`apply_base`].
pub fn check_base(summary: &Summary, count: usize) -> Option<Vec<Findings>> {
    if summary.version != base_version() {
        return None;
    }
    let (filed, layers): (usize, _) = postcard::take_from_bytes(&summary.body).ok()?;
    if filed != count {
        return None;
    }
    let mut rest = layers;
    let mut found = Vec::with_capacity(count);
    for _ in 0..count {
        let (findings, after) = check_part(rest)?;
        found.push(findings);
        rest = after;
    }
    rest.is_empty().then_some(found)
}

/// Applies a base summary checked by [`check_base`] to `view`, a layer
/// at a time, each change as it is decoded.
pub fn apply_base(summary: &Summary, view: &mut View) -> Option<()> {
    let (count, mut rest): (usize, _) = postcard::take_from_bytes(&summary.body).ok()?;
    for _ in 0..count {
        rest = apply_part(rest, view)?.1;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::NodeKind;
    use crate::seal::scan::Found;

    fn path(p: &str) -> ImagePath {
        ImagePath::from_rel(p).unwrap()
    }

    fn node(kind: NodeKind) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            layer: 3,
            capability: false,
        }
    }

    /// A layer's changes in the order its tar has them: a whiteout after
    /// an entry.
    fn changes() -> Vec<Change> {
        vec![
            Change::Put(path("srv/a"), node(NodeKind::File { size: 7 }), None),
            Change::Whiteout(path("srv/b")),
            Change::Put(
                path("etc/passwd"),
                node(NodeKind::File { size: 5 }),
                Some(b"root\n".to_vec()),
            ),
            Change::Opaque(path("opt")),
        ]
    }

    fn findings() -> Findings {
        Findings {
            found: vec![(
                path("srv/a"),
                Found::Key {
                    format: "OpenSSH".into(),
                    inside: None,
                },
            )],
        }
    }

    /// `changes` and [`findings`] as a summary of this version, held.
    fn summary_of(changes: &[Change]) -> Summary {
        let body = LayerSummary::encode(changes, &findings(), Vec::new()).unwrap();
        Summary {
            version: LayerSummary::version(),
            body,
        }
    }

    /// A view below the layer: what its whiteouts hide.
    fn lower() -> View {
        let mut view = View::new();
        view.apply(vec![
            Change::Put(path("srv"), node(NodeKind::Dir), None),
            Change::Put(path("srv/b"), node(NodeKind::File { size: 1 }), None),
            Change::Put(path("opt"), node(NodeKind::Dir), None),
            Change::Put(path("opt/x"), node(NodeKind::File { size: 1 }), None),
        ]);
        view
    }

    fn nodes(view: &View) -> Vec<(ImagePath, Node)> {
        view.iter().map(|(p, n)| (p.clone(), n.clone())).collect()
    }

    /// A summary put together from its changes, encoded early, and its
    /// findings, later, decodes whole, its whiteouts first; applied as it
    /// is decoded, it gives the view the changes give applied at once.
    #[test]
    fn a_summary_in_two_parts_applies_as_the_changes_do() {
        let summary = summary_of(&changes());
        let back = LayerSummary::decode(&summary).unwrap();
        let hides_first: Vec<Change> = hiding_first(&changes()).cloned().collect();
        assert_eq!((back.changes, back.findings), (hides_first, findings()));

        let mut at_once = lower();
        let index = at_once.layer_count();
        at_once.apply(
            changes()
                .into_iter()
                .map(|c| at_layer(c, index))
                .collect::<Vec<_>>(),
        );
        let mut streamed = lower();
        assert_eq!(LayerSummary::check_current(&summary), Some(findings()));
        LayerSummary::apply_checked(&summary, &mut streamed).unwrap();
        assert_eq!(nodes(&streamed), nodes(&at_once));
        assert_eq!(streamed.layer_count(), at_once.layer_count());
        assert_eq!(streamed.content(&path("etc/passwd")), Some(&b"root\n"[..]));
        assert!(streamed.get(&path("srv/b")).is_none() && streamed.get(&path("opt/x")).is_none());
    }

    /// A summary cut short, with bytes after it, or with a whiteout after
    /// an entry (which streaming would apply wrongly) does not check out:
    /// it is never applied, and the layer is read back.
    #[test]
    fn a_summary_not_whole_is_refused() {
        let good = summary_of(&changes());
        let body = |changes: &[Change]| {
            let mut encoded = EncodedChanges::new(changes.len(), Vec::new());
            for change in changes {
                encoded.push(change);
            }
            let mut body = encoded.finish().unwrap();
            body.extend(postcard::to_stdvec(&findings()).unwrap());
            body
        };
        let tar_order = body(&changes());
        let filing = |filed: &[Filed]| {
            let mut body = postcard::to_stdvec(&filed.len()).unwrap();
            for f in filed {
                body = postcard::to_extend(f, body).unwrap();
            }
            body.extend(postcard::to_stdvec(&findings()).unwrap());
            body
        };
        let whiteout = |shared, rest| Filed::Whiteout { shared, rest };
        let fine = filing(&[whiteout(0, "srv/b"), whiteout(4, "c")]);
        assert_eq!(
            LayerSummary::decode(&Summary {
                body: fine,
                ..good.clone()
            })
            .map(|s| s.changes),
            Some(vec![
                Change::Whiteout(path("srv/b")),
                Change::Whiteout(path("srv/c"))
            ])
        );
        // A path said to share more than the path before it has.
        let overlong = filing(&[whiteout(0, "srv/b"), whiteout(6, "c")]);
        // A path that is not canonical.
        let dotdot = filing(&[whiteout(0, "srv/b"), whiteout(4, "..")]);
        // Summary 4's form: postcard's own encoding of the changes.
        let mut plain = postcard::to_stdvec(&hiding_first(&changes()).collect::<Vec<_>>()).unwrap();
        plain.extend(postcard::to_stdvec(&findings()).unwrap());
        let cut = Summary {
            body: good.body[..good.body.len() - 1].to_vec(),
            ..good.clone()
        };
        let mut longer = good.clone();
        longer.body.push(0);
        let unordered = Summary {
            body: tar_order,
            ..good.clone()
        };
        let other = Summary {
            version: "summary 3".into(),
            ..good.clone()
        };
        let with = |body: Vec<u8>| Summary {
            body,
            ..good.clone()
        };
        for (what, bad) in [
            ("cut", cut),
            ("longer", longer),
            ("unordered", unordered),
            ("other version", other),
            ("sharing more than there is", with(overlong)),
            ("not canonical", with(dotdot)),
            ("summary 4's encoding", with(plain)),
        ] {
            assert_eq!(LayerSummary::decode(&bad), None, "{what}");
            assert_eq!(LayerSummary::check_current(&bad), None, "{what}");
        }
    }

    /// A base's summary, written a layer at a time, applies as its
    /// layers' changes do (the upper one's whiteouts hiding the lower
    /// one's files), with each layer's findings; one cut short, longer,
    /// of another layer count or another version is refused.
    #[test]
    fn a_base_summary_applies_as_its_layers_do() {
        let bottom: Vec<Change> = vec![
            Change::Put(path("srv"), node(NodeKind::Dir), None),
            Change::Put(path("srv/b"), node(NodeKind::File { size: 1 }), None),
            Change::Put(path("opt"), node(NodeKind::Dir), None),
            Change::Put(path("opt/x"), node(NodeKind::File { size: 1 }), None),
        ];
        let mut summary = BaseSummary::new(2, Vec::new());
        let mut chunked = Changes::default();
        for change in bottom.iter().cloned() {
            chunked.push(change);
        }
        summary.add(&chunked, &Findings::default());
        summary.add(&Changes::from(changes()), &findings());
        let good = Summary {
            version: base_version(),
            body: summary.finish().unwrap(),
        };

        let mut at_once = View::new();
        at_once.apply(
            bottom
                .into_iter()
                .map(|c| at_layer(c, 0))
                .collect::<Vec<_>>(),
        );
        at_once.apply(
            changes()
                .into_iter()
                .map(|c| at_layer(c, 1))
                .collect::<Vec<_>>(),
        );
        let mut streamed = View::new();
        let found = check_base(&good, 2);
        assert_eq!(found, Some(vec![Findings::default(), findings()]));
        apply_base(&good, &mut streamed).unwrap();
        assert_eq!(nodes(&streamed), nodes(&at_once));
        assert_eq!(streamed.layer_count(), 2);
        assert!(streamed.get(&path("srv/b")).is_none() && streamed.get(&path("opt/x")).is_none());
        assert_eq!(streamed.content(&path("etc/passwd")), Some(&b"root\n"[..]));

        let cut = Summary {
            body: good.body[..good.body.len() - 1].to_vec(),
            ..good.clone()
        };
        let mut longer = good.clone();
        longer.body.push(0);
        let other = Summary {
            version: "base summary 2, layer reading 0".into(),
            ..good.clone()
        };
        for (what, bad, count) in [
            ("cut", &cut, 2),
            ("longer", &longer, 2),
            ("another version", &other, 2),
            ("another layer count", &good, 3),
        ] {
            assert_eq!(check_base(bad, count), None, "{what}");
        }
    }

    /// A layer's sorted paths cost a fraction of their length: each is
    /// filed as what it adds to the one before.
    #[test]
    fn paths_are_filed_as_what_they_add_to_the_one_before() {
        let changes: Vec<Change> = (0..1000)
            .map(|i| {
                let p = format!(
                    "srv/app/node_modules/package-{:03}/lib/file-{i:04}.js",
                    i / 10
                );
                Change::Put(path(&p), node(NodeKind::File { size: 100 }), None)
            })
            .collect();
        let plain = postcard::to_stdvec(&changes).unwrap().len();
        let encoded = LayerSummary::encode_changes(&changes, Vec::new()).unwrap();
        assert!(
            encoded.len() * 3 < plain,
            "{} of {plain} bytes",
            encoded.len()
        );
        let back = LayerSummary::decode(&summary_of(&changes)).unwrap();
        assert_eq!(back.changes, changes);
        // Non-ASCII names share only whole characters.
        let names = [path("srv/é"), path("srv/è"), path("srv/èa")];
        let changes: Vec<Change> = names.iter().cloned().map(Change::Whiteout).collect();
        assert_eq!(
            LayerSummary::decode(&summary_of(&changes)).unwrap().changes,
            changes
        );
    }
}
