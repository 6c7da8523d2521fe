//! `tickmux sim`: the simulator as its own process, and commands that script a running one
//! through its control endpoint (`fault`, `clear`, `state`).

use super::{EXIT_USAGE, parse_seconds};
use crate::config::Config;
use crate::sim::{self, Fault, Sim};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `tickmux sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// WebSocket port on 127.0.0.1 (default: [sim] ws_port, 0 = any free port).
    #[arg(long, value_name = "P")]
    pub ws_port: Option<u16>,
    /// REST and control port on 127.0.0.1 (default: [sim] http_port, 0 = any free port).
    #[arg(long, value_name = "P")]
    pub http_port: Option<u16>,
    /// Random-walk seed (default: [sim] seed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Ticks per second per connection (default: [sim] tick_rate).
    #[arg(long, value_name = "N")]
    pub tick_rate: Option<u32>,
    /// Script a running simulator instead of starting one.
    #[command(subcommand)]
    pub action: Option<SimAction>,
}

/// Commands for a running simulator.
#[derive(Debug, Subcommand)]
pub enum SimAction {
    /// Inject a fault.
    Fault(FaultArgs),
    /// Clear every persistent fault.
    Clear {
        /// Control URL printed by `tickmux sim` (its REST root).
        #[arg(long, value_name = "URL")]
        control: String,
    },
    /// Print counters, connections and active faults as JSON.
    State {
        /// Control URL printed by `tickmux sim` (its REST root).
        #[arg(long, value_name = "URL")]
        control: String,
    },
}

/// Fault kinds, named as in the control API's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum FaultKind {
    /// One-shot: close frame on every connection (--code, default 1000).
    Close,
    /// One-shot: abrupt TCP reset on every connection.
    Reset,
    /// Connections go silent; new ones never get an answer.
    Blackhole,
    /// Heartbeats continue, ticks stop.
    #[value(alias = "heartbeats-only")]
    HeartbeatsOnly,
    /// Upgrades and REST calls answered 403 (token rejected).
    #[value(name = "reject403", alias = "reject-403")]
    Reject403,
    /// Upgrades and REST calls answered 429 (connection limit).
    #[value(name = "reject429", alias = "reject-429")]
    Reject429,
    /// Upgrade completes, then the connection closes at once.
    #[value(alias = "accept-then-close")]
    AcceptThenClose,
    /// Malformed binary frames between the normal ones.
    Malformed,
    /// Every write is delayed (--delay-ms).
    #[value(alias = "slow-writes")]
    SlowWrites,
    /// Subscriptions are acknowledged but never tick.
    #[value(alias = "ignore-subscriptions")]
    IgnoreSubscriptions,
    /// TCP accepted, HTTP upgrade never answered.
    #[value(alias = "hang-handshake")]
    HangHandshake,
    /// These tokens never tick (--tokens).
    Quiet,
    /// Subscribing these tokens is refused (--tokens).
    #[value(alias = "reject-tokens")]
    RejectTokens,
    /// Reconnects within --window seconds (default 5) of a close are upgraded then closed.
    Cooldown,
    /// At most --max (default 3) concurrent connections per broker; beyond: HTTP 429.
    #[value(alias = "connection-limit")]
    ConnectionLimit,
    /// The server closes (1000) right after a subscribe request.
    #[value(alias = "close-after-subscribe")]
    CloseAfterSubscribe,
}

/// Arguments of `tickmux sim fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Fault to inject.
    pub kind: FaultKind,
    /// Clear it after this many seconds (default: until `sim clear`).
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// Close code for `close`.
    #[arg(long, value_name = "C")]
    pub code: Option<u16>,
    /// Instrument tokens for `quiet` and `reject_tokens`, comma-separated.
    #[arg(long, value_name = "T,T", value_delimiter = ',')]
    pub tokens: Vec<u32>,
    /// Delay per write for `slow_writes`, milliseconds.
    #[arg(long, value_name = "D")]
    pub delay_ms: Option<u64>,
    /// Cooldown window for `cooldown`, seconds (default 5).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub window: Option<f64>,
    /// Concurrent connections per broker for `connection_limit` (default 3).
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// Control URL printed by `tickmux sim` (its REST root).
    #[arg(long, value_name = "URL")]
    pub control: String,
}

/// Build the fault from the flags, refusing flags that do not apply (they would be ignored).
pub fn build_fault(a: &FaultArgs) -> Result<Fault, String> {
    use FaultKind as K;
    let takes_tokens = matches!(a.kind, K::Quiet | K::RejectTokens);
    if a.code.is_some() && a.kind != K::Close {
        return Err("--code applies only to the close fault".into());
    }
    if a.delay_ms.is_some() && a.kind != K::SlowWrites {
        return Err("--delay-ms applies only to the slow_writes fault".into());
    }
    if a.window.is_some() && a.kind != K::Cooldown {
        return Err("--window applies only to the cooldown fault".into());
    }
    if a.max.is_some() && a.kind != K::ConnectionLimit {
        return Err("--max applies only to the connection_limit fault".into());
    }
    if !a.tokens.is_empty() && !takes_tokens {
        return Err("--tokens applies only to the quiet and reject_tokens faults".into());
    }
    if takes_tokens && a.tokens.is_empty() {
        return Err("this fault needs --tokens T,T (instrument tokens, e.g. 408065)".into());
    }
    Ok(match a.kind {
        K::Close => Fault::Close {
            code: a.code.unwrap_or(1000),
        },
        K::Reset => Fault::Reset,
        K::Blackhole => Fault::Blackhole,
        K::HeartbeatsOnly => Fault::HeartbeatsOnly,
        K::Reject403 => Fault::Reject403,
        K::Reject429 => Fault::Reject429,
        K::AcceptThenClose => Fault::AcceptThenClose,
        K::Malformed => Fault::Malformed,
        K::SlowWrites => Fault::SlowWrites {
            delay_ms: a
                .delay_ms
                .ok_or("slow_writes needs --delay-ms D (milliseconds per write)")?,
        },
        K::IgnoreSubscriptions => Fault::IgnoreSubscriptions,
        K::HangHandshake => Fault::HangHandshake,
        K::Quiet => Fault::Quiet {
            tokens: a.tokens.clone(),
        },
        K::RejectTokens => Fault::RejectTokens {
            tokens: a.tokens.clone(),
        },
        K::Cooldown => Fault::Cooldown {
            window_seconds: a.window.unwrap_or(5.0),
        },
        K::ConnectionLimit => Fault::ConnectionLimit {
            max: a.max.unwrap_or(3),
        },
        K::CloseAfterSubscribe => Fault::CloseAfterSubscribe,
    })
}

/// Run `sim fault|clear|state` against a running simulator.
pub async fn control(action: &SimAction) -> anyhow::Result<ExitCode> {
    match action {
        SimAction::Fault(a) => {
            let fault = match build_fault(a) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("tickmux: {e}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            };
            sim::inject_remote(&a.control, &fault, a.seconds).await?;
            let line = serde_json::json!({"injected": fault, "seconds": a.seconds});
            println!("{line}");
        }
        SimAction::Clear { control } => {
            sim::clear_remote(control).await?;
            println!("{}", serde_json::json!({"cleared": true}));
        }
        SimAction::State { control } => {
            let v = sim::state_remote(control).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run the simulator in the foreground until Ctrl+C or SIGTERM.
pub async fn run(cfg: &Config, args: SimArgs) -> anyhow::Result<ExitCode> {
    let mut sc = cfg.sim_config();
    sc.ws_port = args.ws_port.unwrap_or(sc.ws_port);
    sc.http_port = args.http_port.unwrap_or(sc.http_port);
    sc.seed = args.seed.unwrap_or(sc.seed);
    sc.tick_rate = args.tick_rate.unwrap_or(sc.tick_rate);
    let s = Sim::start(sc.clone()).await?;
    // The first stdout line is the machine-readable handshake that scripts and tests wait for.
    let hello = serde_json::json!({
        "ws_url": s.ws_url(),
        "rest_url": s.rest_url(),
        "control_url": s.rest_url(),
        "api_key": sc.api_key,
        "access_token": sc.access_token,
        "client_code": sc.client_code,
        "feed_token": sc.feed_token,
        "brokers": s.broker_urls(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{hello}")?;
        out.flush()?;
    }
    eprintln!(
        "tickmux sim: WebSocket {}, REST and control {} (seed {}, {} ticks/s); \
         inject faults with `tickmux sim fault <kind> --control {}`; Ctrl+C to stop",
        s.ws_url(),
        s.rest_url(),
        sc.seed,
        sc.tick_rate,
        s.rest_url()
    );
    super::shutdown_signal().await;
    tracing::info!("simulator stopping");
    s.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
