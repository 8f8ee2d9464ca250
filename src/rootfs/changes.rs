//! A layer's changes as a reader collects them: in chunks, so that the
//! view taking them frees each chunk as it goes, and a layer of hundreds of
//! thousands of entries is never held whole beside the view it fills.

use super::Change;

/// Changes a chunk holds; the last may hold fewer.
const CHUNK: usize = 4096;

/// A layer's changes, in its order.
#[derive(Debug, Default)]
pub struct Changes {
    chunks: Vec<Vec<Change>>,
}

impl Changes {
    pub fn push(&mut self, change: Change) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(change),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(change);
                self.chunks.push(chunk);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Change> + Clone {
        self.chunks.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Vec::is_empty)
    }

    /// The changes in one list, each chunk freed as it is moved over.
    pub fn into_vec(self) -> Vec<Change> {
        let mut all = Vec::with_capacity(self.len());
        all.extend(self);
        all
    }
}

/// In order; each chunk is freed once passed.
impl IntoIterator for Changes {
    type Item = Change;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Change>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

impl From<Vec<Change>> for Changes {
    fn from(changes: Vec<Change>) -> Changes {
        Changes {
            chunks: vec![changes],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::meta::ImagePath;

    fn whiteout(i: usize) -> Change {
        Change::Whiteout(ImagePath::from_rel(&format!("f{i}")).unwrap())
    }

    #[test]
    fn changes_of_many_chunks_keep_their_order() {
        let mut changes = Changes::default();
        assert!(changes.is_empty());
        let all: Vec<Change> = (0..2 * CHUNK + 3).map(whiteout).collect();
        for change in all.iter().cloned() {
            changes.push(change);
        }
        assert_eq!(changes.chunks.len(), 3);
        assert_eq!(changes.len(), all.len());
        assert!(changes.iter().eq(all.iter()));
        assert_eq!(changes.into_vec(), all);
        let one = Changes::from(all.clone());
        assert!(one.into_iter().eq(all));
    }
}
