//! The `livetally` binary: parse the command line (with its `--config` file), set up
//! logging, then run a node until SIGTERM or SIGINT, or one of the tools. Everything else
//! lives in the library.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use livetally::auth::mint::TokenArgs;
use livetally::config::file::{parse_with_file, ConfigFile, FileSettings, LoadError};
use livetally::config::{Config, ConfigError, LogFormat};
use tokio_util::sync::CancellationToken;

/// Command line of the `livetally` binary.
#[derive(Debug, Parser)]
#[command(
    name = "livetally",
    version,
    about = "Live audience and engagement tracker: counts who watches a campaign and what they do, live.",
    after_help = "Without a command, `livetally` is `livetally serve`: `livetally serve --help` lists \
                  the node's settings. Each is a flag, a LIVETALLY_* variable or a key of the \
                  --config file (flags win, then variables, then the file).\n\n\
                  Docs: README.md, docs/operations.md. Example settings: deploy/livetally.toml."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The file of `serve`, accepted without the command too (it is the default).
    #[command(flatten)]
    file: ConfigFile,
    /// Flags of `serve`, accepted without the command too (hidden from this help).
    #[command(flatten)]
    serve: Config,
}

/// The node's settings as a command takes them: the flags and the file under them.
#[derive(Debug, Args)]
struct Settings {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    config: Config,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a node (the default when no command is given).
    Serve(Settings),
    /// Print a viewer join token for a campaign, signed with the node's key.
    ///
    /// The key is the node's --join-secret, else the one derived from its first
    /// --operator-token: give the same settings (or --config file) as the node.
    Token {
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        settings: Settings,
    },
    /// Check the node's settings without starting it (`config check`).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Rehearse a launch: open many viewer sockets, send interactions, report the numbers.
    Load(livetally::load::LoadArgs),
    /// Simulate a launch on hundreds of virtual nodes against a Redis Cluster.
    ///
    /// No sockets: the real tally, flusher and broadcaster (scripts/bench-seed-scale.sh).
    Simulate(livetally::sim::SimArgs),
    /// Finish a node-by-node upgrade from v1 once no v1 node runs any more.
    ///
    /// Takes the store settings of `serve` (or its --config file); see docs/operations.md.
    UpgradeStore(Settings),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check the settings a node would start with, and print them with secrets masked.
    ///
    /// Reads them as `serve` does: flags, then LIVETALLY_* variables, then the --config
    /// file, then the defaults. Exits 0 when a node would start with them; otherwise 2,
    /// naming the setting at fault. Starts nothing and connects to nothing.
    #[command(after_help = "Takes every flag of `serve` as well (`livetally serve --help`).")]
    Check(Settings),
}

/// Settings `livetally token` reads: where the key comes from (the store's, later).
const TOKEN_KEY_FLAGS: &[&str] = &["operator_token", "join_secret", "redis", "redis_cluster"];

/// The command line as people read it: the settings of `serve` are listed by `serve
/// --help` only, `token` shows those its key comes from, `config check` none.
fn command() -> clap::Command {
    let settings: Vec<String> = Config::augment_args(clap::Command::new("livetally"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let hide_unless = |keep: &'static [&'static str]| {
        let settings = settings.clone();
        move |a: clap::Arg| {
            let id = a.get_id().as_str();
            let hidden = a.is_hide_set() || (settings.iter().any(|s| s == id) && !keep.contains(&id));
            a.hide(hidden)
        }
    };
    Cli::command()
        .mut_args(hide_unless(&[]))
        .mut_subcommand("token", |c| c.mut_args(hide_unless(TOKEN_KEY_FLAGS)))
        .mut_subcommand("config", |c| {
            c.mut_subcommand("check", |c| c.mut_args(hide_unless(&[])))
        })
}

fn main() -> anyhow::Result<()> {
    let (matches, file) = match parse_with_file(command(), std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(LoadError::Clap(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (config, upgrade) = match cli.command {
        None => (cli.serve, false),
        Some(Command::Serve(s)) => (s.config, false),
        Some(Command::UpgradeStore(s)) => (s.config, true),
        Some(Command::Token { token, settings }) => std::process::exit(token_main(&token, &settings.config)),
        Some(Command::Config {
            command: ConfigCommand::Check(s),
        }) => {
            let m = matches
                .subcommand_matches("config")
                .and_then(|m| m.subcommand_matches("check"));
            // unwrap: clap matched exactly this command path above.
            std::process::exit(check_main(&s.config, m.unwrap(), file.as_ref()))
        }
        Some(Command::Load(args)) => std::process::exit(livetally::load::main(args)?),
        Some(Command::Simulate(args)) => std::process::exit(livetally::sim::main(args)?),
    };
    init_logging(config.log_format);
    if let Err(e) = config.validate() {
        tracing::error!(error = describe(&e, file.as_ref()), "refusing to start");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = if upgrade {
        rt.block_on(livetally::node::finish_upgrade(&config))
    } else {
        rt.block_on(serve(config))
    };
    // Through the log, so a failed start is one more event in the chosen format.
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "stopped with an error");
        std::process::exit(1);
    }
    Ok(())
}

/// Binds `--listen` and runs the node until a signal.
async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = livetally::util::listen::bind(config.listen, config.reuse_port)
        .map_err(|e| anyhow::anyhow!("cannot listen on --listen {}: {e}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    livetally::node::run(listener, config, shutdown).await
}

/// `livetally token`: the token on stdout, or why not on stderr (exit 2).
fn token_main(args: &TokenArgs, node: &Config) -> i32 {
    let now_s = (livetally::util::now_ms() / 1000) as u64;
    // The store is asked only when it decides: no `--join-secret`, and store flags given.
    let stored = if node.join_secret.is_empty() {
        let read = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(livetally::node::stored_join_key(node)));
        match read {
            Ok(stored) => stored,
            Err(e) => {
                eprintln!("error: {e:#}");
                return 2;
            }
        }
    } else {
        None
    };
    match livetally::auth::mint::mint(args, node, stored.as_ref(), now_s) {
        Ok((token, exp)) => {
            println!("{}", livetally::auth::mint::output(args, &token, exp));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// `livetally config check`: the effective settings on stdout, then whether a node would
/// start with them (exit 0) or which setting is wrong (exit 2).
fn check_main(config: &Config, matches: &clap::ArgMatches, file: Option<&FileSettings>) -> i32 {
    println!("# The settings `livetally serve` would start with; secrets masked.");
    println!("# Each line says where its value came from: a flag, a LIVETALLY_* variable,");
    match file {
        Some(f) => println!("# the config file ({}), or the default.", f.path.display()),
        None => println!("# the config file (none given), or the default."),
    }
    print!("{}", livetally::config::show::effective(matches, file));
    match check_settings(config) {
        Ok(()) => {
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            eprintln!("ok: a node would start with these settings");
            0
        }
        Err(e) => {
            eprintln!("error: {}", describe(&e, file));
            2
        }
    }
}

/// A setting's error, naming the file's key when the value came from there.
fn describe(e: &ConfigError, file: Option<&FileSettings>) -> String {
    match file.filter(|f| f.has(&e.flag.replace('-', "_"))) {
        Some(f) => format!("{e} (set by `{}` in {})", e.flag, f.path.display()),
        None => e.to_string(),
    }
}

/// What a node checks before it starts, its TLS files included.
fn check_settings(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        livetally::tls::Certificates::load(cert, key).map_err(|e| ConfigError {
            flag: "tls-cert",
            reason: format!("cannot be loaded with --tls-key: {e}"),
        })?;
    }
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): text lines for people, or one
/// JSON object per event for Loki/ELK.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}
