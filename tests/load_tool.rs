//! `livetally load` against a real node: the tool's JSON report must show every socket
//! connected, every message acked, and the server's totals equal to what was acked.

mod support;

use std::process::Command;

use serde_json::Value;
use support::node::{Backend, Node, TOKEN};

/// Runs the tool against `node` with `extra` flags and returns its JSON report (with the
/// node's RSS and CPU when the node is a process of its own).
fn load(node: &Node, extra: &[&str]) -> Value {
    let url = format!("ws://{}", node.addr);
    let node_pid = node.process_id().map(|pid| ["--node-pid".to_owned(), pid.to_string()]);
    let out = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["load", "--url", &url, "--json"])
        .args(node_pid.iter().flatten())
        .args(extra)
        .output()
        .expect("run livetally load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "tool exited with {:?}: {report:#}", out.status);
    report
}

fn assert_exact(report: &Value, viewers: u64) {
    assert_eq!(report["connect"]["connected"], viewers, "{report:#}");
    assert_eq!(report["connect"]["failed"], 0, "{report:#}");
    assert_eq!(report["dropped"], 0, "{report:#}");
    assert_eq!(report["failures"], serde_json::json!({}), "{report:#}");
    let acked = report["interactions"]["acked"].as_u64().expect("acked");
    assert!(acked > 0, "nothing was acked: {report:#}");
    assert_eq!(report["interactions"]["sent"], acked, "{report:#}");
    assert_eq!(report["interactions"]["errors"], 0, "{report:#}");
    let server = &report["server"];
    assert_eq!(
        server["after"]["interactions"].as_u64().unwrap() - server["before"]["interactions"].as_u64().unwrap(),
        acked,
        "{report:#}"
    );
    assert_eq!(server["totals_equal"], true, "{report:#}");
    assert_eq!(report["clean"], true, "{report:#}");
}

/// A node process: the report's node section reads its pid's RSS and CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_hundred_sockets_acked_totals_equal_the_server() {
    let node = Node::spawn(&[]);
    node.campaign("rehearsal").await;
    let report = load(
        &node,
        &[
            "--campaign",
            "rehearsal",
            "--viewers",
            "300",
            "--rate",
            "300",
            "--max-unacked",
            "4",
            "--duration",
            "2s",
            "--registrations",
            "10",
            "--share-visits",
            "10",
        ],
    );
    assert_exact(&report, 300);
    assert_eq!(report["server"]["after"]["registrations"], 10, "{report:#}");
    assert_eq!(report["server"]["after"]["share_visits"], 10, "{report:#}");
    assert!(report["stats"]["frames"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["node"]["rss_after_kib"].as_u64().is_some(), "{report:#}");
    // The server's own count agrees with the report.
    let stats = node.stats("rehearsal").await;
    assert_eq!(stats["interactions"]["like"], report["interactions"]["acked"]);
}

/// Two worker processes (the path a run above one process's file limit takes), on Redis,
/// with the campaign created by the tool. The tool is the process here; the node runs
/// in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_redis_create_the_campaign_and_stay_exact() {
    // A flood needs the per-socket rate limit raised, as in a like-storm rehearsal.
    let node = Node::start_with(Backend::Redis, &["--max-interactions-per-sec", "100000"]);
    let report = load(
        &node,
        &[
            "--campaign",
            "rehearsal-2",
            "--create",
            "--operator-token",
            TOKEN,
            "--processes",
            "2",
            "--viewers",
            "200",
            "--rate",
            "max",
            "--max-unacked",
            "8",
            "--duration",
            "1s",
        ],
    );
    assert_eq!(report["processes"], 2, "{report:#}");
    assert_exact(&report, 200);
}

/// Past 1,000 sockets the tool moves to the next source address, so its defaults fit a
/// node's default `--max-sockets-per-client` (1,000): no socket is refused with 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sockets_per_address_fit_a_nodes_default_per_client_limit() {
    let node = Node::start(&[]);
    node.campaign("per-client").await;
    let report = load(
        &node,
        &[
            "--campaign",
            "per-client",
            "--viewers",
            "1100",
            "--rate",
            "100",
            "--duration",
            "1s",
        ],
    );
    assert_exact(&report, 1100);
}
