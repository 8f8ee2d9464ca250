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
