//! The HTTP side of a watch: the streaming body that turns a cache watcher into frames.

pub mod stream;
pub mod transform;
