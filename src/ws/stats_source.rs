//! Where a socket's stats frames come from: over plain TCP the broadcaster writes them into
//! the socket itself (`broadcast::outlet`) and the task only finishes what it left; over any
//! other stream the task sends each new frame of the campaign's `watch` channel. One
//! branch of the socket's `select!` either way, so its future holds one wait, not two.

use std::sync::Arc;

use tokio::sync::watch;

use super::transport::{Io, Transport};
use crate::broadcast::outlet::{Audience, Outlet};
use crate::protocol::Frames;
use crate::tally::CampaignTally;

/// Where a socket's stats frames come from.
pub enum StatsSource {
    /// Plain TCP: the broadcaster writes them into the socket; the task only writes what it
    /// left behind (the socket was busy or full).
    Direct(Arc<Outlet>),
    /// Any other stream: the task sends each new frame of the campaign's `watch` channel.
    Watched(watch::Receiver<Arc<Frames>>),
}

/// What a [`StatsSource`] asks of its task next.
pub enum NextStats {
    /// Write the frames the broadcaster left.
    Queued,
    /// Send this frame.
    Frame(Arc<Frames>),
    /// The campaign is no longer served here.
    Gone,
}

impl StatsSource {
    pub fn of<S: Io>(transport: &Transport<S>, tally: &CampaignTally) -> Self {
        match transport.outlet() {
            Some(outlet) => StatsSource::Direct(outlet.clone()),
            None => StatsSource::Watched(tally.frames.subscribe()),
        }
    }

    /// The campaign's channel, whatever the stream: for sockets that answer each frame
    /// themselves (operators, whose `watch` follows every frame).
    pub fn watched(tally: &CampaignTally) -> Self {
        StatsSource::Watched(tally.frames.subscribe())
    }

    /// Call once the socket gets the broadcast (its outlet registered, its receiver
    /// subscribed): if a frame newer than the welcome's (`welcomed`) was published before
    /// that, this socket missed it, and the broadcaster sends a frame only when the numbers
    /// change, so it gets that one now.
    pub fn catch_up(&mut self, tally: &CampaignTally, welcomed: &Arc<Frames>, audience: Audience) {
        match self {
            // Offered until the newest is the last written here: the broadcaster may publish
            // and offer a newer frame meanwhile, which must not be followed by an older one.
            StatsSource::Direct(outlet) => {
                let mut last = welcomed.clone();
                loop {
                    let current = tally.frames.borrow().clone();
                    if Arc::ptr_eq(&current, &last) {
                        return;
                    }
                    outlet.offer(match audience {
                        Audience::Viewer | Audience::Unit(_) => &current.viewer_wire,
                        Audience::Operator => &current.operator_wire,
                    });
                    last = current;
                }
            }
            // The task reads the newest when it sends.
            StatsSource::Watched(frames) => {
                if !Arc::ptr_eq(&frames.borrow(), welcomed) {
                    frames.mark_changed();
                }
            }
        }
    }

    pub async fn next(&mut self) -> NextStats {
        match self {
            StatsSource::Direct(outlet) => {
                std::future::poll_fn(|cx| outlet.poll_queued(cx)).await;
                NextStats::Queued
            }
            StatsSource::Watched(frames) => match frames.changed().await {
                Ok(()) => NextStats::Frame(frames.borrow_and_update().clone()),
                Err(_) => NextStats::Gone,
            },
        }
    }
}
