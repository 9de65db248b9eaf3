//! The `livetally` binary as a platform engineer first meets it: its version, its help, a
//! config file checked without starting a node, and a join token minted from the shell
//! that a node started from the shipped example file admits.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::node::{Node, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_livetally");

/// The shipped example config file.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/livetally.toml");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs the binary with `args` and no `LIVETALLY_*` settings but `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("LIVETALLY_")) {
        cmd.env_remove(name);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run livetally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file in the system's temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        let name = format!(
            "livetally-cli-{}-{}.toml",
            std::process::id(),
            livetally::auth::random_id(6)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn one_version_for_the_binary_the_sdk_the_widget_and_the_openapi_document() {
    let version = env!("CARGO_PKG_VERSION");
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("livetally {version}\n"));
    let json = |path: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap() };
    assert_eq!(json("src/http/openapi.json")["info"]["version"], version);
    assert_eq!(json("web/sdk/package.json")["version"], version);
    // The widget's package, once it has one.
    if repo("web/embed/package.json").exists() {
        assert_eq!(json("web/embed/package.json")["version"], version);
    }
    let changelog = std::fs::read_to_string(repo("CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains(&format!("## [{version}] - ")),
        "CHANGELOG.md has no released section for {version}"
    );
}

#[test]
fn the_help_lists_commands_not_every_flag_of_serve() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = stdout(&out);
    for command in ["serve", "token", "config", "load", "upgrade-store"] {
        assert!(help.contains(&format!("\n  {command} ")), "{command} missing:\n{help}");
    }
    assert!(help.contains("--config <FILE>"), "{help}");
    assert!(
        !help.contains("--flush-interval"),
        "serve's flags belong to `serve --help`:\n{help}"
    );
    // Every command's one-line summary fits a terminal.
    let commands = help.split("Commands:").nth(1).unwrap().split("\n\n").next().unwrap();
    for line in commands.lines() {
        assert!(line.len() <= 100, "too long for a summary: {line}");
    }

    let out = run(&["config", "check", "--help"], &[]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("secrets masked"), "{help}");
    assert!(help.contains("--config <FILE>"), "{help}");
    assert!(!help.contains("--tick"), "{help}");
    assert!(run(&["serve", "--help"], &[]).status.success());
    assert!(stdout(&run(&["serve", "--help"], &[])).contains("--flush-interval"));
}

#[test]
fn config_check_accepts_the_example_and_masks_every_secret() {
    let webhook_secret = "whsec-receiver-secret-0123456789";
    let out = run(
        &[
            "config",
            "check",
            "--config",
            EXAMPLE,
            "--redis",
            "redis://:hunter2-redis-password@127.0.0.1:1/0",
            "--webhook-url",
            "https://hooks.example/livetally?token=receiver-query-token",
            "--webhook-secret",
            webhook_secret,
        ],
        &[("LIVETALLY_OPERATOR_TOKEN", TOKEN), ("LIVETALLY_TICK", "500ms")],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    assert!(err.contains("ok: a node would start"), "{err}");
    for secret in [TOKEN, "hunter2-redis-password", "receiver-query-token", webhook_secret] {
        assert!(
            !text.contains(secret) && !err.contains(secret),
            "{secret} printed:\n{text}"
        );
    }
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} line:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Each value with where it came from: the file, a flag, a variable, the default.
    assert_eq!(line("listen"), r#"listen = "0.0.0.0:8080" # config file"#);
    assert_eq!(line("redis"), r#"redis = "redis://:********@127.0.0.1:1/0" # --redis"#);
    assert_eq!(
        line("operator-token"),
        r#"operator-token = ["********"] # LIVETALLY_OPERATOR_TOKEN"#
    );
    assert_eq!(line("tick"), r#"tick = "500ms" # LIVETALLY_TICK"#);
    assert_eq!(
        line("webhook-secret"),
        r#"webhook-secret = "********" # --webhook-secret"#
    );
    assert_eq!(
        line("webhook-url"),
        r#"webhook-url = ["https://hooks.example/livetally?token=********"] # --webhook-url"#
    );
    assert_eq!(line("max-share-channels"), "max-share-channels = 64 # default");
}

#[test]
fn a_bad_file_stops_check_and_serve_naming_the_key() {
    let cases = [
        ("lisen = \"0.0.0.0:8080\"\n", "unknown key `lisen`"),
        ("drain_period = \"5s\"\n", "did you mean `drain-period`?"),
        ("max-pending = \"lots\"\n", "`max-pending`"),
        ("reuse-port = 1\n", "`reuse-port`: must be true or false"),
        (
            "allowed-origins = [1, [2]]\n",
            "`allowed-origins`: must be a list of strings",
        ),
        ("trusted-proxies = [\"10.0.0.0/33\"]\n", "`trusted-proxies`"),
        // A value each flag's parser accepts, but the node's checks refuse.
        (
            "tick = \"10ms\"\n",
            "invalid --tick: must be between 50ms and 60s (set by `tick` in",
        ),
    ];
    for (text, want) in cases {
        let file = TempFile::new(text);
        for command in [&["config", "check"][..], &["serve"][..]] {
            let mut args = command.to_vec();
            args.extend(["--config", file.path(), "--listen", "127.0.0.1:0"]);
            let out = run(&args, &[]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{command:?} {text}: {err}");
            assert!(err.contains(want), "{command:?} {text}: {err}");
        }
    }
    let out = run(&["config", "check", "--config", "/nonexistent/livetally.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/livetally.toml"));
}

/// The `--join-secret` the shell and the node share (32+ characters, as advised).
const JOIN_SECRET: &str = "shell-and-node-share-this-join-secret";

#[tokio::test(flavor = "multi_thread")]
async fn a_node_from_the_example_file_admits_a_token_minted_from_the_shell() {
    // The example file as shipped; the test's address and operator token as flags over it,
    // and a join secret: a node on the memory store keeps its own key to itself.
    let node = Node::spawn(&["--config", EXAMPLE, "--join-secret", JOIN_SECRET]);
    node.campaign_with(json!({"id": "vip", "title": "VIP", "access": "token"}))
        .await;
    let out = run(
        &[
            "token",
            "--config",
            EXAMPLE,
            "--campaign",
            "vip",
            "--sub",
            "viewer-from-shell",
            "--ttl",
            "10m",
        ],
        &[
            ("LIVETALLY_OPERATOR_TOKEN", TOKEN),
            ("LIVETALLY_JOIN_SECRET", JOIN_SECRET),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let mut ws = node.viewer("vip", &format!("token={token}")).await;
    let welcome = ws.next().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["viewer"], "viewer-from-shell");

    // `--json` answers as `POST …/tokens` does; without a key nothing is minted.
    let out = run(
        &["token", "--campaign", "vip", "--json", "--join-secret", JOIN_SECRET],
        &[],
    );
    let minted: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let now_ms = livetally::util::now_ms() as i64;
    let expires_at = minted["expires_at"].as_i64().unwrap();
    assert!(
        (now_ms + 86_390_000..=now_ms + 86_410_000).contains(&expires_at),
        "{minted}"
    );
    node.viewer("vip", &format!("token={}", minted["token"].as_str().unwrap()))
        .await;
    // Neither a secret nor a store: the memory store's key is its node's alone, and the
    // operator token names no key any more.
    for args in [
        &["token", "--campaign", "vip"][..],
        &["token", "--campaign", "vip", "--operator-token", TOKEN],
    ] {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("no key to sign with"), "{}", stderr(&out));
    }
    // A token signed with another key is refused.
    let out = run(
        &[
            "token",
            "--campaign",
            "vip",
            "--join-secret",
            "another-deployment-secret",
        ],
        &[],
    );
    let other = stdout(&out).trim().to_owned();
    assert_eq!(node.refused(&format!("/ws/v1/campaigns/vip?token={other}")).await, 403);
}
