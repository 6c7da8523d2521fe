//! Command line: argument parsing, the TUI entry (`tickmux` with no subcommand) and the
//! headless surfaces (`stream`, `sim`, `demo`).
//!
//! Exit codes: 0 success; 1 runtime failure; 2 bad arguments, bad config, nothing to stream,
//! or no terminal for the TUI.

pub mod demo;
pub mod serve;
pub mod setup;
pub mod sim;
pub mod stream;

use crate::config::{Config, ConfigError};
use crate::model::{Mode, parse_symbol};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use tokio::sync::watch;

/// tickmux: one market-data connection, shared by everything that wants ticks.
#[derive(Debug, Parser)]
#[command(name = "tickmux", version, about)]
pub struct Cli {
    /// Config file (default: config.toml in the platform config dir; see config.example.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// With no subcommand: run the headless demo for N seconds instead of the TUI (kept from
    /// before the TUI; same as `tickmux demo --seconds N`).
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// TUI frame cap, 1-120 (default: [tui] fps, 20); try 10 over a slow ssh link.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: Option<u32>,
    /// TUI: capture the mouse (wheel scrolls; text selection then needs Shift).
    #[arg(long)]
    pub mouse: bool,
    /// What to run; none = the TUI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Headless ticks and health changes as JSON lines on stdout.
    Stream(stream::StreamArgs),
    /// Plain-text demo screen once per second (the starter watchlist; no TUI, works in pipes).
    Demo(demo::DemoArgs),
    /// Run the simulator in the foreground, or script a running one.
    Sim(sim::SimArgs),
    /// Headless engine + OpenAlgo-compatible proxy for local strategy scripts (a VPS).
    Serve(serve::ServeArgs),
    /// Print the proxy's API key (created on first use), or rotate it.
    Key(serve::KeyArgs),
}

/// Exit code for bad arguments, bad config, or nothing valid to do.
pub const EXIT_USAGE: u8 = 2;

/// Parse `EXCHANGE:SYMBOL` for clap (kept as typed; resolution happens later).
pub fn parse_symbol_arg(s: &str) -> Result<String, String> {
    parse_symbol(s).map(|_| s.trim().to_string())
}

/// Parse a mode for clap.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

/// Parse a positive, finite number of seconds for clap.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Entry point of the binary: parse, set up logging and a runtime, run, map errors to codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `args_conflicts_with_subcommands` would also reject the global `--config`, so the
    // command-specific conflicts are checked here.
    if cli.seconds.is_some() && cli.command.is_some() {
        usage_error(
            "--seconds before a subcommand applies only to the demo; put it after the subcommand",
        );
    }
    if (cli.fps.is_some() || cli.mouse) && (cli.command.is_some() || cli.seconds.is_some()) {
        usage_error("--fps and --mouse apply only to the TUI (`tickmux` with no subcommand)");
    }
    let tui = cli.command.is_none() && cli.seconds.is_none();
    // Checked before anything starts, so a pipe gets the pointer at once.
    if tui && let Err(msg) = crate::tui::terminal::check_tty() {
        eprintln!("tickmux: {msg}");
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(Command::Sim(s)) = &cli.command
        && s.action.is_some()
        && (s.ws_port.is_some()
            || s.http_port.is_some()
            || s.seed.is_some()
            || s.tick_rate.is_some())
    {
        usage_error(
            "--ws-port, --http-port, --seed and --tick-rate apply only when starting a simulator",
        );
    }
    // Scripting a running simulator needs neither config nor logs.
    if let Some(Command::Sim(s)) = &cli.command
        && let Some(action) = &s.action
    {
        return block_on(sim::control(action));
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tickmux: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let _guard = match crate::logging::init(&cfg) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("tickmux: warning: logging disabled: {e:#}");
            None
        }
    };
    let code = block_on(async {
        match cli.command {
            None if tui => {
                let opts = crate::tui::runtime::Options {
                    fps: cli.fps.unwrap_or(cfg.tui.fps),
                    mouse: cli.mouse || cfg.tui.mouse,
                };
                crate::tui::runtime::run(&cfg, opts).await
            }
            None => {
                demo::run(
                    &cfg,
                    demo::DemoArgs {
                        seconds: cli.seconds,
                    },
                )
                .await
            }
            Some(Command::Demo(a)) => demo::run(&cfg, a).await,
            Some(Command::Stream(a)) => stream::run(&cfg, a).await,
            Some(Command::Sim(a)) => sim::run(&cfg, a).await,
            Some(Command::Serve(a)) => serve::run(&cfg, a).await,
            Some(Command::Key(a)) => serve::key(&cfg, a),
        }
    });
    tracing::info!("tickmux exiting");
    code
}

fn usage_error(msg: &str) -> ! {
    use clap::CommandFactory as _;
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

fn block_on(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    // At least two workers, so the signal task runs even while one blocks writing stdout.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tickmux: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(fut);
    // Stray tasks (a hung connect) must not hold the process open after the work is done.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(code) => code,
        Err(e) => {
            let msg = crate::secret::redact(&format!("{e:#}"));
            tracing::error!("{msg}");
            eprintln!("tickmux: {msg}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

static STOP: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Resolves on Ctrl+C or SIGTERM. The first call (inside the runtime) starts the one signal
/// task; if the graceful stop has not finished 5 s after the signal (a write blocked on a full
/// pipe), or a second signal arrives, the process exits with 130.
pub async fn shutdown_signal() {
    let mut rx = STOP
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                os_signal().await;
                let _ = tx.send(true);
                tokio::select! {
                    _ = os_signal() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
                eprintln!("tickmux: forced exit");
                std::process::exit(130);
            });
            rx
        })
        .clone();
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn os_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Resolves after `seconds`, or never when `None`.
pub async fn deadline(seconds: Option<f64>) {
    match seconds {
        Some(s) => tokio::time::sleep(std::time::Duration::from_secs_f64(s)).await,
        None => std::future::pending().await,
    }
}

/// Now as Unix milliseconds.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
