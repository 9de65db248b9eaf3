//! Node configuration: one `clap` struct, every flag mirrored by a `LIVETALLY_<FLAG>` env var,
//! validated once at start so a bad value fails loudly with the flag's name instead of
//! misbehaving later.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::util::duration::parse_duration;

pub mod file;
pub mod show;

pub mod defaults;

/// Everything a node needs to know at start.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket traffic.
    #[arg(long, env = "LIVETALLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis URL (redis:// or rediss://, password in the URL). Absent: embedded in-memory store.
    #[arg(long, env = "LIVETALLY_REDIS", conflicts_with = "redis_cluster")]
    pub redis: Option<String>,

    /// Comma-separated seed URLs of a Redis Cluster.
    #[arg(long, env = "LIVETALLY_REDIS_CLUSTER", value_delimiter = ',')]
    pub redis_cluster: Vec<String>,

    /// This node's name in presence and metrics (default: hostname-pid).
    #[arg(long, env = "LIVETALLY_NODE_ID")]
    pub node_id: Option<String>,

    /// Stats push interval (e.g. 1s, 500ms).
    #[arg(long, env = "LIVETALLY_TICK", default_value = defaults::TICK.text, value_parser = parse_duration)]
    pub tick: Duration,

    /// How often batched deltas are written to the store (and acks released).
    #[arg(long, env = "LIVETALLY_FLUSH_INTERVAL", default_value = defaults::FLUSH_INTERVAL.text, value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// Lease of a node's presence share: a node that dies stops counting after this.
    #[arg(long, env = "LIVETALLY_PRESENCE_TTL", default_value = defaults::PRESENCE_TTL.text, value_parser = parse_duration)]
    pub presence_ttl: Duration,

    /// Operator bearer token, or a comma-separated list (every one is accepted, so a token
    /// is rotated without downtime: add the new one, move clients, drop the old one).
    /// Absent: one is generated and logged once at start.
    #[arg(
        long,
        env = "LIVETALLY_OPERATOR_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub operator_token: Vec<String>,

    /// Comma-separated origins allowed to open viewer sockets and read the public routes
    /// from another origin (CORS) (absent: any).
    #[arg(long, env = "LIVETALLY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Most sockets this node holds at once (default: open-file limit less a reserve).
    #[arg(long, env = "LIVETALLY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Interaction messages per second per connection (burst is twice this).
    #[arg(long, env = "LIVETALLY_MAX_INTERACTIONS_PER_SEC", default_value_t = defaults::MAX_INTERACTIONS_PER_SEC)]
    pub max_interactions_per_sec: u32,

    /// Share the listen port with other nodes on this host (SO_REUSEPORT).
    #[arg(long, env = "LIVETALLY_REUSE_PORT", default_value_t = false)]
    pub reuse_port: bool,

    /// HS256 secrets of viewer join tokens (JWTs), comma-separated: the first signs, every
    /// one verifies (a rotation). At least 16 characters (32 advised). Default: 32 random
    /// bytes made once per deployment and kept in the store; a backend that mints its own
    /// tokens needs this set, since it cannot know the stored key.
    #[arg(long, env = "LIVETALLY_JOIN_SECRET", hide_env_values = true, value_delimiter = ',')]
    pub join_secret: Vec<String>,

    /// On SIGTERM, close sockets (1001) at random moments spread over this period rather
    /// than all at once, so viewers reconnect to other nodes gradually; meanwhile new
    /// sockets and /readyz get 503. 0: close them all at once.
    #[arg(long, env = "LIVETALLY_DRAIN_PERIOD", default_value = defaults::DRAIN_PERIOD.text, value_parser = parse_duration)]
    pub drain_period: Duration,

    /// Most counts a node buffers while the store is unreachable before refusing new
    /// interactions with an error.
    #[arg(long, env = "LIVETALLY_MAX_PENDING", default_value_t = defaults::MAX_PENDING)]
    pub max_pending: u64,

    /// Comma-separated CIDRs of proxies whose `X-Forwarded-For` is believed (default: none;
    /// the TCP peer is the client).
    #[arg(long, env = "LIVETALLY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Header an edge sets to the viewer's region (e.g. `CF-IPCountry`): it overrides the
    /// `region` query, a token's `region` claim overrides it. With `--trusted-proxies`,
    /// believed only from those.
    #[arg(long, env = "LIVETALLY_REGION_HEADER", value_parser = parse_header_name)]
    pub region_header: Option<actix_http::header::HeaderName>,

    /// Concurrent viewer sockets one client address may hold on this node (0: no limit).
    /// Mobile carriers put thousands of people behind one address: see docs/operations.md.
    #[arg(long, env = "LIVETALLY_MAX_SOCKETS_PER_CLIENT", default_value_t = 1000)]
    pub max_sockets_per_client: usize,

    /// Registrations and share visits one client address may make per minute on this node
    /// (0: no limit).
    #[arg(long, env = "LIVETALLY_MAX_PUBLIC_WRITES_PER_CLIENT", default_value_t = 600)]
    pub max_public_writes_per_client: u32,

    /// Distinct share channels counted per campaign; visits on further channels count under
    /// `other`.
    #[arg(long, env = "LIVETALLY_MAX_SHARE_CHANNELS", default_value_t = defaults::MAX_SHARE_CHANNELS)]
    pub max_share_channels: usize,

    /// How long a session's resume state (its acked seq) outlives its last socket: it is
    /// forgotten within twice this.
    #[arg(long, env = "LIVETALLY_SESSION_TTL", default_value = defaults::SESSION_TTL.text, value_parser = parse_duration)]
    pub session_ttl: Duration,

    // --- Webhooks (docs/webhooks.md) ---
    /// Receiver of webhook events (repeatable, or comma-separated): every event is POSTed
    /// to each. Needs `--webhook-secret`.
    #[arg(long, env = "LIVETALLY_WEBHOOK_URL", value_delimiter = ',')]
    pub webhook_url: Vec<String>,

    /// Key of the `Livetally-Signature` HMAC-SHA256 receivers verify.
    #[arg(long, env = "LIVETALLY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Base of the retry schedule: the first retry comes after half to all of it, each
    /// next one doubles, up to 10 minutes apart. Keep the default in production.
    #[arg(long, env = "LIVETALLY_WEBHOOK_RETRY_BASE", default_value = "8s", value_parser = parse_duration)]
    pub webhook_retry_base: Duration,

    /// Test only: how long a receiver may take to answer (the contract says 5s).
    #[arg(long, env = "LIVETALLY_WEBHOOK_TIMEOUT", default_value = "5s", value_parser = parse_duration, hide = true)]
    pub webhook_timeout: Duration,

    /// Test only: how often a node looks for due webhook events.
    #[arg(long, env = "LIVETALLY_WEBHOOK_POLL", default_value = "1s", value_parser = parse_duration, hide = true)]
    pub webhook_poll: Duration,
    // --- Standing alone in production: TLS and machine-readable logs. ---
    /// PEM certificate chain (leaf first): the node serves https:// and wss:// itself.
    /// Re-read with --tls-key on SIGHUP; a bad pair is logged and the old one kept.
    /// (The pair is checked by `file::check_combinations`, so one may come from the file.)
    #[arg(long, env = "LIVETALLY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "LIVETALLY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// How long a TLS client has from its accepted connection to a finished handshake;
    /// then it is closed. Long enough for a reconnect storm's queue of handshakes on a
    /// busy node (3 s dropped half of a 2,000-socket storm on 2 cores), short enough that
    /// a silent connection gives its slot back.
    #[arg(long, env = "LIVETALLY_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// TLS handshakes in progress at once on this node (shared among its worker threads);
    /// past it, new connections wait in the listen backlog. A handshake waiting for its
    /// ClientHello costs a socket and a few KiB, no CPU, so this is far above what the
    /// CPU could handshake in the timeout.
    #[arg(long, env = "LIVETALLY_TLS_MAX_HANDSHAKES", default_value_t = 10_000)]
    pub tls_max_handshakes: usize,

    /// TLS handshakes in progress at once from one TCP peer (an IPv4 address, an IPv6 /64;
    /// 0: no cap); past it, that peer's new connections are closed at once. Behind a TCP
    /// balancer that passes TLS through, every peer is the balancer: set 0.
    #[arg(long, env = "LIVETALLY_TLS_HANDSHAKES_PER_PEER", default_value_t = 128)]
    pub tls_handshakes_per_peer: usize,

    /// Log format: `text` for people, `json` for Loki/ELK (one JSON object per line).
    #[arg(long, env = "LIVETALLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long a viewer's welcome waits for its session's claim in the store. Past it (or
    /// at once when the store is down) the socket is admitted anyway and claimed later
    /// (docs/consistency.md, "A viewer who connects during an outage").
    #[arg(long, env = "LIVETALLY_CLAIM_WAIT", default_value = defaults::CLAIM_WAIT.text, value_parser = parse_duration)]
    pub claim_wait: Duration,

    // --- Nothing to gain from a script (docs/operations.md, "Limits") ---
    /// How long a viewer socket must stay open before its viewer counts in
    /// `unique_viewers` (and, once it interacted, in `interactors`); 0s: at once.
    #[arg(long, env = "LIVETALLY_UNIQUE_AFTER", default_value = defaults::UNIQUE_AFTER.text, value_parser = parse_duration)]
    pub unique_after: Duration,

    /// Viewer socket upgrades one client address may make per minute on this node, from a
    /// bucket of a third of it, refilled evenly (0: no limit); past it the upgrade gets 429
    /// with Retry-After.
    #[arg(long, env = "LIVETALLY_MAX_CONNECTS_PER_CLIENT", default_value_t = defaults::MAX_CONNECTS_PER_CLIENT)]
    pub max_connects_per_client: u32,

    /// Webhook events one campaign's queue holds while a receiver is behind; past it the
    /// oldest `registration.created` are dropped first (`result="dropped"`).
    #[arg(long, env = "LIVETALLY_WEBHOOK_QUEUE_MAX", default_value_t = defaults::WEBHOOK_QUEUE_MAX)]
    pub webhook_queue_max: usize,

    /// Wrong operator tokens (or tickets) one client address may present within a minute
    /// before it is locked out of every operator route for a minute (0: never locked out,
    /// for an API fuzzer; docs/operations.md, "Secrets").
    #[arg(long, env = "LIVETALLY_MAX_AUTH_FAILURES_PER_CLIENT", default_value_t = defaults::MAX_AUTH_FAILURES_PER_CLIENT)]
    pub max_auth_failures_per_client: usize,

    /// Levels of a campaign's org (1 = top) whose live viewers carry the campaign's
    /// guarantee and get peaks and unique viewers (docs/consistency.md, "Per-unit
    /// counting"); deeper levels' viewers are exact within seconds. 1 to 6.
    #[arg(long, env = "LIVETALLY_UNIT_PEAK_DEPTH", default_value_t = defaults::UNIT_PEAK_DEPTH, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub unit_peak_depth: u8,
}

/// How the node writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00Z  INFO livetally::node: listening addr=…`
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// Values the shipped examples and docs use, and a few others people paste: a node started
/// with one would be open to anyone who read the same page.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "placeholder",
    "example",
    "your-token",
    "your_token",
    "yourtoken",
    "secret-here",
    "token-here",
];

/// Fewest distinct characters a secret may have. Random tokens (`openssl rand -hex 24`:
/// 48 characters, about 15 distinct) pass easily; `aaaaaaaaaaaaaaaa` or `1212121212121212`
/// do not.
pub const MIN_DISTINCT_SECRET_CHARS: usize = 8;

/// The shortest `--join-secret` a node starts with: below it a secret is guessable offline
/// from any join token a viewer holds.
pub const MIN_JOIN_SECRET: usize = 16;

/// The length a `--join-secret` should have (a warning below it): HS256 wants a key as long
/// as its 256-bit hash (RFC 7518, 3.2).
pub const ADVISED_JOIN_SECRET: usize = 32;

impl Config {
    /// Settings a node starts with but should not: logged at start (and by `config check`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.join_secret.iter().any(|s| s.len() < ADVISED_JOIN_SECRET) {
            out.push(format!(
                "--join-secret: a secret is shorter than {ADVISED_JOIN_SECRET} characters; HS256 wants 32 random \
                 bytes (`openssl rand -hex 32`)"
            ));
        }
        out
    }
}

/// Why `secret` must not be used, if it must not: a known placeholder, or too few distinct
/// characters to be random.
pub fn weak_secret(secret: &str) -> Option<String> {
    let lower = secret.to_ascii_lowercase();
    if let Some(p) = PLACEHOLDER_SECRETS.iter().find(|p| lower.contains(*p)) {
        return Some(format!(
            "contains the placeholder {p:?}: generate one with `openssl rand -hex 24`"
        ));
    }
    let mut seen: Vec<char> = secret.chars().collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() < MIN_DISTINCT_SECRET_CHARS {
        return Some(format!(
            "has only {} distinct characters (at least {MIN_DISTINCT_SECRET_CHARS}): generate one with `openssl rand -hex 24`",
            seen.len()
        ));
    }
    None
}

/// A CIDR (`10.0.0.0/8`, `fd00::/8`), or one address (`10.0.0.7`: that host only).
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR like 10.0.0.0/8 or an IP address"))
}

/// An HTTP header name (`CF-IPCountry`), as headers are looked up.
pub fn parse_header_name(s: &str) -> Result<actix_http::header::HeaderName, String> {
    actix_http::header::HeaderName::from_bytes(s.trim().as_bytes()).map_err(|_| format!("{s:?} is not a header name"))
}

/// Longest `--drain-period`: past this an orchestrator's grace period would kill the node
/// mid-drain anyway, and the last viewers would wait far too long for their turn.
pub const MAX_DRAIN_PERIOD: Duration = Duration::from_secs(600);

/// A flag that failed validation, named so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("invalid --{flag}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub reason: String,
}

fn bad(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        reason: reason.into(),
    }
}

impl Config {
    /// Checks the values clap cannot check alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick < Duration::from_millis(50) || self.tick > Duration::from_secs(60) {
            return Err(bad("tick", "must be between 50ms and 60s"));
        }
        if self.flush_interval < Duration::from_millis(5) || self.flush_interval > self.tick {
            return Err(bad("flush-interval", "must be between 5ms and --tick"));
        }
        if self.presence_ttl < Duration::from_secs(1) || self.presence_ttl <= self.tick {
            return Err(bad("presence-ttl", "must be at least 1s and longer than --tick"));
        }
        if self.drain_period > MAX_DRAIN_PERIOD {
            return Err(bad("drain-period", "must be at most 10m"));
        }
        if self.operator_token.iter().any(|t| t.len() < 16) {
            return Err(bad("operator-token", "every token must be at least 16 characters"));
        }
        if let Some(why) = self.operator_token.iter().find_map(|t| weak_secret(t)) {
            return Err(bad("operator-token", format!("a token {why}")));
        }
        if self.join_secret.iter().any(|s| s.len() < MIN_JOIN_SECRET) {
            return Err(bad(
                "join-secret",
                format!("every secret must be at least {MIN_JOIN_SECRET} characters ({ADVISED_JOIN_SECRET} advised)"),
            ));
        }
        if let Some(why) = self.join_secret.iter().find_map(|s| weak_secret(s)) {
            return Err(bad("join-secret", format!("a secret {why}")));
        }
        if self.session_ttl < self.presence_ttl {
            return Err(bad("session-ttl", "must be at least --presence-ttl"));
        }
        if self.max_share_channels == 0 {
            return Err(bad("max-share-channels", "must be at least 1"));
        }
        if self.max_interactions_per_sec == 0 {
            return Err(bad("max-interactions-per-sec", "must be at least 1"));
        }
        if self.max_connections == Some(0) {
            return Err(bad("max-connections", "must be at least 1"));
        }
        if self.max_pending == 0 {
            return Err(bad("max-pending", "must be at least 1"));
        }
        if let Some(url) = &self.redis {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(bad("redis", "must start with redis:// or rediss://"));
            }
        }
        for url in &self.redis_cluster {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(bad("redis-cluster", "every URL must start with redis:// or rediss://"));
            }
        }
        self.validate_webhooks()?;
        // Pairs clap checks only on the command line, and a file's values are not on it.
        file::check_combinations(self)?;
        self.validate_tls()?;
        for origin in &self.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(bad("allowed-origins", format!("{origin:?} is not an http(s) origin")));
            }
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        if self.tls_handshake_timeout < Duration::from_millis(100)
            || self.tls_handshake_timeout > Duration::from_secs(60)
        {
            return Err(bad("tls-handshake-timeout", "must be between 100ms and 60s"));
        }
        if self.tls_max_handshakes == 0 {
            return Err(bad("tls-max-handshakes", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        for url in &self.webhook_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(bad("webhook-url", format!("{url:?} is not an http(s) URL")));
            }
        }
        match self.webhook_secret.as_deref() {
            None if !self.webhook_url.is_empty() => {
                return Err(bad(
                    "webhook-secret",
                    "is required with --webhook-url (receivers verify it)",
                ))
            }
            Some(s) if s.len() < 16 => return Err(bad("webhook-secret", "must be at least 16 characters")),
            _ => {}
        }
        if self.webhook_retry_base.is_zero() || self.webhook_retry_base > Duration::from_secs(10) {
            return Err(bad(
                "webhook-retry-base",
                "must be more than 0 and at most 10s (the first retry comes within it)",
            ));
        }
        if self.webhook_queue_max == 0 {
            return Err(bad("webhook-queue-max", "must be at least 1"));
        }
        if self.webhook_timeout.is_zero() || self.webhook_poll.is_zero() {
            return Err(bad("webhook-timeout", "and --webhook-poll must be more than 0"));
        }
        Ok(())
    }

    /// The node id used in presence: the flag, or hostname-pid.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "node".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_durations_read_as_the_flag_parser_reads_them() {
        use defaults::*;
        for d in [
            TICK,
            FLUSH_INTERVAL,
            PRESENCE_TTL,
            SESSION_TTL,
            DRAIN_PERIOD,
            CLAIM_WAIT,
        ] {
            assert_eq!(parse_duration(d.text), Ok(d.value), "{}", d.text);
        }
        assert_eq!(SESSION_TTL.value, Duration::from_secs(86_400));
    }

    #[test]
    fn proxies_are_cidrs_or_addresses() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("proxy.example").is_err());
    }

    #[test]
    fn placeholder_and_low_entropy_secrets_are_refused() {
        // The example of deploy/systemd/livetally.env, exactly as shipped.
        let env = include_str!("../deploy/systemd/livetally.env");
        let shipped = env
            .lines()
            .find_map(|l| l.strip_prefix("LIVETALLY_OPERATOR_TOKEN="))
            .expect("the example env sets LIVETALLY_OPERATOR_TOKEN");
        assert!(shipped.len() >= 16, "the trap: it passes the length check");
        assert!(weak_secret(shipped).unwrap().contains("placeholder"));
        for weak in [
            "CHANGEME-CHANGEME-CHANGEME",
            "aaaaaaaaaaaaaaaaaaaa",
            "1212121212121212",
            "your-token-goes-here-123",
        ] {
            assert!(weak_secret(weak).is_some(), "{weak} passed");
        }
        // What the docs tell operators to use, and the test suites' tokens.
        for strong in [
            "3f9a1c07d2b84e6a9e15c0b7d4f2a8e19c3b6d5e7f8a9b0c",
            "test-operator-token-0123456789",
            "brand-backend-join-secret",
        ] {
            assert_eq!(weak_secret(strong), None, "{strong} refused");
        }
    }

    #[test]
    fn validation_names_the_flag() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        let cli = <Cli as clap::Parser>::parse_from(["livetally", "--tick", "10ms"]);
        let err = cli.config.validate().unwrap_err();
        assert_eq!(err.flag, "tick");
        assert!(err.to_string().contains("--tick"));
        for (args, flag) in [
            (["--tls-handshake-timeout", "0s"], "tls-handshake-timeout"),
            (["--tls-handshake-timeout", "2m"], "tls-handshake-timeout"),
            (["--tls-max-handshakes", "0"], "tls-max-handshakes"),
        ] {
            let cli = <Cli as clap::Parser>::parse_from(["livetally"].into_iter().chain(args));
            assert_eq!(cli.config.validate().unwrap_err().flag, flag);
        }
        let cli = <Cli as clap::Parser>::parse_from(["livetally", "--tls-handshakes-per-peer", "0"]);
        assert!(cli.config.validate().is_ok(), "0 turns the per-peer cap off");
    }

    #[test]
    fn webhook_urls_need_a_secret() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        let parse = |args: &[&str]| <Cli as clap::Parser>::parse_from(args).config.validate();
        let url = "https://hooks.example/livetally";
        let err = parse(&["livetally", "--webhook-url", url]).unwrap_err();
        assert_eq!(err.flag, "webhook-secret");
        let secret = "whsec-0123456789abcdef";
        assert!(parse(&["livetally", "--webhook-url", url, "--webhook-secret", secret]).is_ok());
        let err = parse(&["livetally", "--webhook-url", "ftp://x", "--webhook-secret", secret]).unwrap_err();
        assert_eq!(err.flag, "webhook-url");
        let err = parse(&["livetally", "--webhook-retry-base", "11s"]).unwrap_err();
        assert_eq!(err.flag, "webhook-retry-base");
    }
}
