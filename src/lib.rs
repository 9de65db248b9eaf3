//! livetally: a live-audience and engagement tracker.
//!
//! A like travels through the modules in this order:
//! - [`ws`]: the viewer socket task parses the frame and checks limits,
//! - [`tally`]: adds it to the session's local counters (no lock, no channel hop),
//! - [`tally::flusher`]: every flush interval hands one batch per campaign to the [`store`],
//!   then releases the acks,
//! - [`broadcast`]: every tick reads the global stats back from the store, serialises ONE
//!   frame per campaign and shares it with every socket.
//!
//! Beside that path: [`http`] (the JSON API and pages), [`auth`] (operator and join
//! tokens), [`metrics`], [`config`], and [`node`], which wires it all and runs until shutdown.
//! [`load`] is the load rehearsal tool (`livetally load`), a client of the public [`protocol`] only.

pub mod auth;
pub mod broadcast;
pub mod campaign;
pub mod config;
pub mod error;
pub mod http;
pub mod load;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod store;
pub mod tally;
pub mod util;
pub mod ws;
