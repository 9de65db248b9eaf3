//! `livetally load`: the load rehearsal tool. It opens many viewer sockets against one or
//! more nodes, sends interactions at a target rate, and reports what a launch rehearsal
//! needs: connect rate and failures, ack latency, stats delivery lag, server totals against
//! what was acked, and (with `--node-pid`) the node's memory per socket and CPU per frame.
//!
//! Modules in the order a run uses them: [`args`] (the flags), [`coordinator`] (steps the
//! workers through the run), [`events`] (what coordinator and workers tell each other),
//! [`worker`] (one process's share of the sockets, in-process or as a child re-executed
//! with `--worker i/n` when one process's open-file limit is too small), [`viewer`] (one
//! viewer's connect), [`socket`] (its socket through the run), [`shared`] (the counters
//! a worker's sockets add to), [`tls`] (wss:// and https://), [`hist`] (mergeable latency histograms), [`api`] over
//! [`http`] (the few API calls), [`procfs`] (memory and CPU readings), [`report`] (the
//! table and the JSON).
//!
//! The tool is a client of the public protocol only: from the rest of the crate it uses
//! [`crate::protocol`] and the [`crate::util`] leaves, nothing of the server's internals.

pub mod api;
pub mod args;
pub mod coordinator;
pub mod events;
pub mod hist;
pub mod http;
pub mod procfs;
pub mod report;
pub mod shared;
pub mod socket;
pub mod table;
pub mod tls;
pub mod viewer;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;

pub use args::LoadArgs;

/// Entry point of `livetally load`: builds a runtime and runs the coordinator (or, with
/// `--worker`, one worker). Returns the process exit code: 0 when the run was clean
/// (no failures, totals equal), 1 otherwise.
pub fn main(args: LoadArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let tls = tls::client_config(args.ca_file.as_deref(), args.insecure)?;
        let targets = args::resolve(&args.urls, &tls).await?;
        let fd_limit = crate::util::fd::raise_fd_limit();
        if let Some(me) = args.worker {
            let run_id = args.run_id.clone().context("--worker needs --run-id")?;
            worker::run_child(Arc::new(args), me, targets, run_id).await;
            return Ok(0);
        }
        coordinator::coordinate(args, targets, fd_limit).await
    })
}
