//! The hub's side of the broker, as the store sees it: who takes what a transport delivers.

use super::envelope::{Envelope, Topic};

/// Who takes what the broker delivers to a node: the hub's node.
pub(crate) trait Subscriber: Send + Sync {
    /// Hands `envelope`, which arrived on `topic`, to the connections it is for.
    fn deliver(&self, topic: &Topic, envelope: &Envelope);
}
