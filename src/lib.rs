//! livetally: a live-audience and engagement tracker.
//!
//! A like travels through the modules in this order:
//! - [`ws`]: admission counts the socket; the socket task parses each frame (with
//!   [`protocol`]) and applies the socket policy,
//! - [`tally`]: adds it to the session's local counters (no lock, no channel hop),
//! - [`tally::flusher`]: every flush interval hands one batch per campaign to the [`store`],
//!   then releases the acks,
//! - [`broadcast`]: every tick reads the global stats back from the store, serialises ONE
//!   frame per campaign and shares it with every socket.
//!
//! [`protocol`] is the wire format, in one place. Beside the path: [`http`] (the JSON API
//! and pages), [`webhooks`] (signed events to the organisers' systems, from the store's
//! queues), [`auth`] (operator and join tokens), [`clients`] (client addresses and the
//! per-client limits), [`metrics`], [`config`], [`campaign`] (the domain type), [`org`] (an
//! organisation's tree of units, uploaded and versioned), [`error`]
//! (HTTP errors), [`tls`] (the served certificate, reloaded on SIGHUP) and [`util`] (leaf
//! helpers). [`node`] wires it all and runs it until
//! shutdown. [`load`] is the load rehearsal tool (`livetally load`), a client of
//! [`protocol`] only. [`sim`] (`livetally simulate`) drives hundreds of virtual nodes' real
//! tally, flusher and broadcaster against one store, without sockets.
//!
//! Imports point one way, from the layers above to the layers below (docs/architecture.md;
//! `python3 scripts/check-modules.py` checks it): util; protocol, campaign, config, org; store,
//! auth, clients, metrics; error, tls; tally; broadcast, webhooks; ws; http; load; sim; node.

pub mod auth;
pub mod broadcast;
pub mod campaign;
pub mod clients;
pub mod config;
pub mod error;
pub mod http;
pub mod load;
pub mod metrics;
pub mod node;
pub mod org;
pub mod protocol;
pub mod sim;
pub mod store;
pub mod tally;
pub mod tls;
pub mod util;
pub mod webhooks;
pub mod ws;
