//! Leaf helpers that several parts need (the node, its tasks and the load tool), so none of
//! them has to import another for a small function: the clock of the wire, background
//! threads, duration flags,
//! the open-file limit, listener binding and the cells of the CSV exports. Nothing here
//! imports the rest of the crate.

pub mod background;
pub mod csv;
pub mod duration;
pub mod fd;
pub mod listen;

/// Milliseconds since the unix epoch: the unit of every timestamp on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
