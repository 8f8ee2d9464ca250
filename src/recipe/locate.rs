//! Source positions for recipe nodes.
//!
//! serde gives positions for errors it raises itself, but semantic errors
//! found later (a `src` that escapes, a `remove` of a missing path) happen
//! after deserialization, when spans are gone. This index maps each node's
//! path (`layers/0/steps/2/copy/src`) to where it starts in the file, from a
//! second, cheap pass of yaml-rust2's event parser, which reports markers.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

use crate::error::Pos;

/// Positions of every node of a YAML document, by path.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    nodes: HashMap<Vec<String>, Pos>,
}

impl Locator {
    /// Indexes `text`. A document the parser rejects indexes nothing: serde
    /// reports that error with its own position first.
    pub fn new(text: &str) -> Locator {
        let Ok(events) = marked_events(text) else {
            return Locator::default();
        };
        let mut locator = Locator::default();
        let mut cursor = 0;
        // Skip StreamStart and DocumentStart to reach the root node.
        while cursor < events.len()
            && matches!(events[cursor].0, Event::StreamStart | Event::DocumentStart)
        {
            cursor += 1;
        }
        locator.walk(&events, &mut cursor, &mut Vec::new());
        locator
    }

    /// The position of the node at `path`, or of its nearest ancestor that
    /// exists (a missing field is reported where its parent is); None when
    /// the document has no node at all.
    pub fn find<S: AsRef<str>>(&self, path: &[S]) -> Option<Pos> {
        let mut key: Vec<String> = path.iter().map(|s| s.as_ref().to_string()).collect();
        loop {
            if let Some(pos) = self.nodes.get(&key) {
                return Some(*pos);
            }
            key.pop()?;
        }
    }

    /// Records the node starting at `events[*cursor]` and everything below
    /// it, leaving the cursor after the node.
    fn walk(&mut self, events: &[(Event, Marker)], cursor: &mut usize, path: &mut Vec<String>) {
        let Some((event, mark)) = events.get(*cursor) else {
            return;
        };
        self.nodes.insert(
            path.clone(),
            Pos {
                line: mark.line(),
                col: mark.col() + 1,
            },
        );
        *cursor += 1;
        match event {
            Event::MappingStart(..) => {
                while let Some((ev, _)) = events.get(*cursor) {
                    if matches!(ev, Event::MappingEnd) {
                        *cursor += 1;
                        return;
                    }
                    let key = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => String::new(),
                    };
                    // The key's own position stands for the entry until the
                    // value is seen: "unknown name" errors point at keys.
                    path.push(key);
                    let mut key_path = path.clone();
                    key_path.push(String::from("<key>"));
                    self.walk(events, cursor, &mut key_path);
                    self.walk(events, cursor, path);
                    path.pop();
                }
            }
            Event::SequenceStart(..) => {
                let mut index = 0usize;
                while let Some((ev, _)) = events.get(*cursor) {
                    if matches!(ev, Event::SequenceEnd) {
                        *cursor += 1;
                        return;
                    }
                    path.push(index.to_string());
                    self.walk(events, cursor, path);
                    path.pop();
                    index += 1;
                }
            }
            _ => {}
        }
    }
}

/// Every parse event of `text` with where it starts, or the first syntax
/// error.
pub fn marked_events(text: &str) -> Result<Vec<(Event, Marker)>, ScanError> {
    let mut events = Events::default();
    Parser::new_from_str(text).load(&mut events, false)?;
    Ok(events.0)
}

#[derive(Default)]
struct Events(Vec<(Event, Marker)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_nodes_and_falls_back_to_ancestors() {
        let text =
            "name: x\nlayers:\n  - name: app\n    steps:\n      - copy: { src: a, dest: /b }\n";
        let loc = Locator::new(text);
        assert_eq!(loc.find(&["name"]), Some(Pos { line: 1, col: 7 }));
        assert_eq!(
            loc.find(&["layers", "0", "steps", "0", "copy", "src"]),
            Some(Pos { line: 5, col: 22 })
        );
        assert_eq!(
            loc.find(&["layers", "0", "steps", "0", "copy", "owner"]),
            Some(Pos { line: 5, col: 15 })
        );
        assert_eq!(loc.find(&["nope"]).map(|p| p.line), Some(1));
        assert_eq!(
            Locator::new("a: [").find(&["name"]),
            None,
            "nothing indexed"
        );
    }
}
