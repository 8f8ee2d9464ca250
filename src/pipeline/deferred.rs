//! The merged filesystem of a build's layers so far, as the build holds
//! it: a view, and the summaries the cache served that the view has not
//! taken yet. A summary is checked whole when its layer is served (its
//! seal findings are what serving needs); its changes go into the view
//! only when something asks for the view: a layer to plan, a package
//! report, the checks and the seal. A warm build of an unchanged recipe
//! whose verdict the cache holds asks for none of them, so it never
//! replays its layers entry by entry (issue 19).

use crate::error::{Error, Result};
use crate::rootfs::View;
use crate::store::cache::Summary;

use super::summary::{self, LayerSummary};

/// A view and the summaries it is yet to take, in layer order.
#[derive(Default)]
pub struct Deferred {
    view: View,
    pending: Vec<Pending>,
    /// Layers in `pending`.
    layers: usize,
}

/// A checked summary not yet applied.
enum Pending {
    /// A base's layers, all of them.
    Base {
        summary: Summary,
    },
    Layer {
        summary: Summary,
    },
}

impl Deferred {
    /// Layers so far, applied or not: the index of the next.
    pub fn layer_count(&self) -> usize {
        self.view.layer_count() + self.layers
    }

    /// Takes a base summary that [`summary::check_base`] accepted, of
    /// `count` layers.
    pub fn defer_base(&mut self, summary: Summary, count: usize) {
        self.pending.push(Pending::Base { summary });
        self.layers += count;
    }

    /// Takes a layer summary that [`LayerSummary::check_current`] accepted.
    pub fn defer_layer(&mut self, summary: Summary) {
        self.pending.push(Pending::Layer { summary });
        self.layers += 1;
    }

    /// The view, with every summary taken so far applied.
    pub fn view(&mut self) -> Result<&mut View> {
        for pending in std::mem::take(&mut self.pending) {
            let applied = match &pending {
                Pending::Base { summary } => summary::apply_base(summary, &mut self.view),
                Pending::Layer { summary } => LayerSummary::apply_checked(summary, &mut self.view),
            };
            // Checked whole when taken: only a fault of ours fails here.
            applied.ok_or_else(|| {
                Error::Failed("a cache summary checked whole did not apply".into())
            })?;
        }
        self.layers = 0;
        Ok(&mut self.view)
    }

    /// [`Deferred::view`], kept.
    pub fn into_view(mut self) -> Result<View> {
        self.view()?;
        Ok(self.view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::summary::{BaseSummary, at_layer, base_version};
    use crate::rootfs::changes::Changes;
    use crate::rootfs::meta::ImagePath;
    use crate::rootfs::{Change, Node, NodeKind};
    use crate::seal::scan::Findings;

    fn path(p: &str) -> ImagePath {
        ImagePath::from_rel(p).unwrap()
    }

    fn put(p: &str, kind: NodeKind) -> Change {
        let node = Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            layer: 0,
            capability: false,
        };
        Change::Put(path(p), node, None)
    }

    fn layer(changes: &[Change]) -> Summary {
        let body = LayerSummary::encode(changes, &Findings::default(), Vec::new()).unwrap();
        Summary {
            version: LayerSummary::version(),
            body,
        }
    }

    fn nodes(view: &View) -> Vec<(ImagePath, Node)> {
        view.iter().map(|(p, n)| (p.clone(), n.clone())).collect()
    }

    /// Summaries taken count as layers at once, and go into the view only
    /// when it is asked for, in the order taken, each as its own layer: the
    /// view is the one their changes make applied in turn.
    #[test]
    fn summaries_go_into_the_view_in_order_when_it_is_asked_for() {
        let base = vec![
            put("srv", NodeKind::Dir),
            put("srv/a", NodeKind::File { size: 1 }),
        ];
        let upper = vec![
            Change::Whiteout(path("srv/a")),
            put("srv/b", NodeKind::File { size: 2 }),
        ];
        let top = vec![put("srv/a", NodeKind::File { size: 3 })];
        let mut summary = BaseSummary::new(1, Vec::new());
        summary.add(&Changes::from(base.clone()), &Findings::default());
        let base_summary = Summary {
            version: base_version(),
            body: summary.finish().unwrap(),
        };

        let mut deferred = Deferred::default();
        deferred.defer_base(base_summary, 1);
        deferred.defer_layer(layer(&upper));
        assert_eq!(deferred.layer_count(), 2);
        deferred.defer_layer(layer(&top));
        assert_eq!(deferred.layer_count(), 3);

        let mut applied = View::new();
        for (i, changes) in [base, upper, top].into_iter().enumerate() {
            applied.apply(
                changes
                    .into_iter()
                    .map(|c| at_layer(c, i))
                    .collect::<Vec<_>>(),
            );
        }
        let view = deferred.view().unwrap();
        assert_eq!(nodes(view), nodes(&applied));
        assert_eq!(view.get(&path("srv/a")).map(|n| n.layer), Some(2));
        assert_eq!(view.get(&path("srv/b")).map(|n| n.layer), Some(1));
        assert_eq!(deferred.layer_count(), 3);
        assert_eq!(deferred.into_view().unwrap().layer_count(), 3);
    }
}
