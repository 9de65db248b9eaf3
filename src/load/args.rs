//! The flags of `livetally load` and what they resolve to: the nodes to connect to, and
//! which share of the sockets a worker process opens.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rustls::pki_types::ServerName;

use crate::util::duration::parse_duration;

/// Flags of `livetally load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Node base URL (ws://host:port, or wss:// through TLS; http:// and https:// mean the
    /// same); repeat for several nodes, used round-robin.
    #[arg(
        long = "url",
        env = "LIVETALLY_LOAD_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080"
    )]
    pub urls: Vec<String>,

    /// Campaign the viewers watch.
    #[arg(long, env = "LIVETALLY_LOAD_CAMPAIGN")]
    pub campaign: String,

    /// Viewer sockets to open (over all processes).
    #[arg(long, env = "LIVETALLY_LOAD_VIEWERS", default_value_t = 100)]
    pub viewers: usize,

    /// Connects per second over all processes; 0 opens them as fast as the node accepts.
    #[arg(long, env = "LIVETALLY_LOAD_RAMP", default_value_t = 0.0)]
    pub ramp: f64,

    /// Most connects in flight per process (a bound, so a storm never exhausts the tool).
    #[arg(long, env = "LIVETALLY_LOAD_CONNECT_CONCURRENCY", default_value_t = 2048)]
    pub connect_concurrency: usize,

    /// First source address; sockets bind 127.0.0.2, 127.0.0.3, ... in turn.
    #[arg(long, env = "LIVETALLY_LOAD_SOURCE_IP", default_value = "127.0.0.2")]
    pub source_ip: Ipv4Addr,

    /// Sockets per source address. A node refuses a client's sockets past its
    /// `--max-sockets-per-client` (default 1,000), so the default fits a node's default;
    /// above it, raise that flag on the node. The ephemeral port range holds about 28,000
    /// per address, and a previous run's closed sockets hold theirs in TIME_WAIT for 60 s:
    /// at 20,000 per address, a second 200,000-viewer run in a row stalled near 155,000
    /// while `connect` searched for free ports.
    #[arg(long, env = "LIVETALLY_LOAD_SOCKETS_PER_IP", default_value_t = 1_000)]
    pub sockets_per_ip: usize,

    /// Total interaction messages per second over all sockets, or `max` (as fast as acks
    /// allow); 0 sends none.
    #[arg(long, env = "LIVETALLY_LOAD_RATE", default_value = "0", value_parser = parse_rate)]
    pub rate: f64,

    /// Kind of the interactions sent (each carries count 1, so messages = counts).
    #[arg(long, env = "LIVETALLY_LOAD_KIND", default_value = "like")]
    pub kind: String,

    /// Most messages a socket sends past its last ack.
    #[arg(long, env = "LIVETALLY_LOAD_MAX_UNACKED", default_value_t = 1)]
    pub max_unacked: u64,

    /// Length of the load phase (after every socket connected): interactions are sent and
    /// stats frames timed for this long.
    #[arg(long, env = "LIVETALLY_LOAD_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// After the load phase, how long sockets wait for their last acks.
    #[arg(long, env = "LIVETALLY_LOAD_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Registrations (POST .../registrations, each a new viewer) spread over the load phase.
    /// They and the share visits come from one address: past the node's
    /// `--max-public-writes-per-client` a minute (default 600), raise that flag on the node.
    #[arg(long, env = "LIVETALLY_LOAD_REGISTRATIONS", default_value_t = 0)]
    pub registrations: u64,

    /// Share-link visits (GET /s/{id}?via=load) spread over the load phase.
    #[arg(long, env = "LIVETALLY_LOAD_SHARE_VISITS", default_value_t = 0)]
    pub share_visits: u64,

    /// PID of a node on this host: its memory per socket (VmRSS before and after
    /// connecting) and CPU per delivered stats frame are reported.
    #[arg(long, env = "LIVETALLY_LOAD_NODE_PID")]
    pub node_pid: Option<u32>,

    /// The server is a bare fan-out, not a node (e.g. the kernel-floor program of
    /// `scripts/bench-fanout.sh`): no campaign API, no welcome; a socket counts as connected
    /// once upgraded. Totals are not checked.
    #[arg(long, env = "LIVETALLY_LOAD_BARE", default_value_t = false)]
    pub bare: bool,

    /// Print the report as JSON on stdout instead of a table.
    #[arg(long, env = "LIVETALLY_LOAD_JSON", default_value_t = false)]
    pub json: bool,

    /// Create the campaign first (operator API; needs --operator-token). An existing one is used.
    #[arg(long, env = "LIVETALLY_LOAD_CREATE", default_value_t = false)]
    pub create: bool,

    /// Operator token, for --create.
    #[arg(long, env = "LIVETALLY_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// Processes to spread the sockets over (default: as many as the open-file limit needs).
    #[arg(long, env = "LIVETALLY_LOAD_PROCESSES")]
    pub processes: Option<usize>,

    /// PEM file of a CA to trust for wss:// and https:// besides the public ones (a private
    /// CA, or a self-signed certificate itself).
    #[arg(long, env = "LIVETALLY_LOAD_CA_FILE", conflicts_with = "insecure")]
    pub ca_file: Option<std::path::PathBuf>,

    /// Accept any certificate for wss:// and https:// (self-signed rehearsals only).
    #[arg(long, env = "LIVETALLY_LOAD_INSECURE", default_value_t = false)]
    pub insecure: bool,

    /// Internal: run as worker i of n under a coordinator.
    #[arg(long, hide = true, value_parser = parse_worker)]
    pub worker: Option<WorkerId>,

    /// Internal: the run's id prefix for viewer and session ids.
    #[arg(long, hide = true)]
    pub run_id: Option<String>,
}

/// Worker `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    pub index: usize,
    pub count: usize,
}

fn parse_worker(s: &str) -> Result<WorkerId, String> {
    let (i, n) = s.split_once('/').ok_or("expected i/n")?;
    let index: usize = i.parse().map_err(|_| "bad worker index")?;
    let count: usize = n.parse().map_err(|_| "bad worker count")?;
    if count == 0 || index >= count {
        return Err("need 0 <= i < n".into());
    }
    Ok(WorkerId { index, count })
}

/// A rate: messages per second, or `max`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    if s == "max" {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate (messages/s, or max)")),
    }
}

/// Where a worker's sockets go.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `ws://host:port` or `wss://host:port`
    pub base: String,
    /// `host:port` as in the URL: the `Host` header.
    pub authority: String,
    /// For `wss://`: the TLS client and the name the certificate must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// The `ws(s)://host:port` of each `--url` (`http(s)://` taken as `ws(s)://`), resolved
/// to an IPv4 address. `tls` is the client configuration for the `wss://` ones.
pub async fn resolve(urls: &[String], tls: &Arc<rustls::ClientConfig>) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for url in urls {
        let trimmed = url.trim_end_matches('/');
        let (secure, authority) = match trimmed.split_once("://") {
            Some(("ws" | "http", rest)) => (false, rest),
            Some(("wss" | "https", rest)) => (true, rest),
            _ => bail!("invalid --url {url:?}: expected ws://host:port or wss://host:port"),
        };
        if authority.is_empty() || authority.contains('/') {
            bail!("invalid --url {url:?}: expected ws://host:port or wss://host:port, without a path");
        }
        // The default ports, as a browser would use them.
        let hostport = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let addr = tokio::net::lookup_host(hostport.as_str())
            .await
            .with_context(|| format!("invalid --url {url:?}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("invalid --url {url:?}: no IPv4 address"))?;
        let tls = if secure {
            let host = hostport.rsplit_once(':').map_or(hostport.as_str(), |(h, _)| h);
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .with_context(|| format!("invalid --url {url:?}: {host:?} is not a host name"))?;
            Some((tls.clone(), name))
        } else {
            None
        };
        out.push(Target {
            addr,
            base: format!("{}://{hostport}", if secure { "wss" } else { "ws" }),
            authority: hostport,
            tls,
        });
    }
    if out.is_empty() {
        bail!("invalid --url: at least one is needed");
    }
    Ok(out)
}
