//! The `livetally` binary: parse the command line, set up logging, run a node until
//! SIGTERM or SIGINT, or run the load tool. Everything else lives in the library.

use clap::{Parser, Subcommand};
use livetally::config::{Config, LogFormat};
use tokio_util::sync::CancellationToken;

/// Command line of the `livetally` binary.
#[derive(Debug, Parser)]
#[command(name = "livetally", version, about = "Live audience and engagement tracker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand too (it is the default).
    #[command(flatten)]
    serve: Config,
}

/// Subcommands; `serve` is the default.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start a node (the default when no subcommand is given).
    Serve(Config),
    /// Rehearse a launch: open many viewer sockets, send interactions, report the numbers.
    Load(livetally::load::LoadArgs),
    /// Simulate one campaign's launch on hundreds of virtual nodes against a Redis Cluster
    /// (no sockets: the real tally, flusher and broadcaster; scripts/bench-seed-scale.sh).
    Simulate(livetally::sim::SimArgs),
    /// Finish a node-by-node upgrade from v1 once no v1 node runs any more (takes the
    /// store flags of `serve`; see docs/operations.md).
    UpgradeStore(Config),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, upgrade) = match cli.command {
        Some(Command::Serve(c)) => (c, false),
        Some(Command::Load(args)) => std::process::exit(livetally::load::main(args)?),
        Some(Command::Simulate(args)) => std::process::exit(livetally::sim::main(args)?),
        Some(Command::UpgradeStore(c)) => (c, true),
        None => (cli.serve, false),
    };
    init_logging(config.log_format);
    if let Err(e) = config.validate() {
        tracing::error!(error = %e, "refusing to start");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = if upgrade {
        rt.block_on(livetally::node::finish_upgrade(&config))
    } else {
        rt.block_on(async move {
            let listener = livetally::util::listen::bind(config.listen, config.reuse_port)
                .map_err(|e| anyhow::anyhow!("cannot listen on --listen {}: {e}", config.listen))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(on_signal(shutdown.clone()));
            livetally::node::run(listener, config, shutdown).await
        })
    };
    // Through the log, so a failed start is one more event in the chosen format.
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "stopped with an error");
        std::process::exit(1);
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
