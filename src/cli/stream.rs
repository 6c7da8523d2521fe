//! `tickmux stream`: ticks and health changes as one JSON object per line on stdout, for ssh,
//! pipes and scripts. Everything human goes to stderr.

use super::{EXIT_USAGE, deadline, parse_mode, parse_seconds, parse_symbol_arg, setup, unix_ms};
use crate::config::Config;
use crate::engine::EngineState;
use crate::engine::fanout::StreamItem;
use crate::engine::health::{Health, QualityLabel};
use crate::model::{Depth, Mode, Price, Quote};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use tokio::time::Instant;

/// Arguments of `tickmux stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Instruments as EXCHANGE:SYMBOL (NSE:INFY, "NSE:NIFTY 50") or EXCHANGE:TOKEN.
    #[arg(required = true, value_name = "SYMBOL", value_parser = parse_symbol_arg)]
    pub symbols: Vec<String>,
    /// Subscription mode: ltp, quote or depth.
    #[arg(long, default_value = "quote", value_parser = parse_mode)]
    pub mode: Mode,
    /// Exit 0 after this many ticks.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Exit 0 after this many seconds.
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// One tick line. Quote fields are flattened to the top level so `jq .volume` just works.
#[derive(Serialize)]
struct TickLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: String,
    exchange: &'a str,
    token: u32,
    mode: Mode,
    tradable: bool,
    ltp: Price,
    #[serde(flatten)]
    quote: Option<&'a Quote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<&'a Depth>,
    /// When the engine read the frame, Unix ms.
    recv_ts: i64,
}

/// Serialize `item` as a tick line (no newline).
pub fn tick_json(item: &StreamItem) -> String {
    let age = Instant::now().saturating_duration_since(item.read_at);
    let line = TickLine {
        kind: "tick",
        symbol: item.instrument.display_name(),
        exchange: &item.instrument.exchange,
        token: item.tick.key.token,
        mode: item.tick.mode,
        tradable: item.tick.tradable,
        ltp: item.tick.ltp,
        quote: item.tick.quote.as_ref(),
        depth: item.tick.depth.as_ref(),
        recv_ts: unix_ms() - age.as_millis() as i64,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Serialize a health snapshot as a health line: `{"type":"health","ts":..,<Health fields>}`.
pub fn health_json(h: &Health) -> String {
    let body = serde_json::to_string(h).unwrap_or_else(|_| "{}".into());
    let rest = body.strip_prefix('{').unwrap_or("}");
    let sep = if rest == "}" { "" } else { "," };
    format!("{{\"type\":\"health\",\"ts\":{}{sep}{rest}", unix_ms())
}

/// What makes a health snapshot worth a line (not every periodic republish).
#[derive(PartialEq)]
struct HealthKey {
    state: EngineState,
    quality: QualityLabel,
    error: Option<(&'static str, String)>,
    reconnects: u64,
}

impl HealthKey {
    fn of(h: &Health) -> HealthKey {
        HealthKey {
            state: h.state,
            quality: h.quality,
            error: h
                .last_error
                .as_ref()
                .map(|e| (e.kind.as_str(), e.text.clone())),
            reconnects: h.reconnects,
        }
    }
}

/// Outcome of writing to stdout.
enum Out {
    Ok,
    /// The reader went away (`| head`): stop quietly with success.
    Closed,
}

fn write_line(out: &mut impl Write, line: &str) -> io::Result<Out> {
    match out
        .write_all(line.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
    {
        Ok(()) => Ok(Out::Ok),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Out::Closed),
        Err(e) => Err(e),
    }
}

fn flush(out: &mut impl Write) -> io::Result<Out> {
    match out.flush() {
        Ok(()) => Ok(Out::Ok),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Out::Closed),
        Err(e) => Err(e),
    }
}

/// Run `tickmux stream`.
pub async fn run(cfg: &Config, args: StreamArgs) -> anyhow::Result<ExitCode> {
    if cfg.broker.is_none() {
        eprintln!("tickmux: no broker configured; streaming from the built-in simulator");
    } else {
        eprintln!("tickmux: streaming from {}", setup::describe_source(cfg));
    }
    let feed = setup::start(cfg).await?;
    let (instruments, unknown) = feed
        .master
        .resolve_all(args.symbols.iter().map(String::as_str));
    for e in &unknown {
        eprintln!("tickmux: {e}");
    }
    if instruments.is_empty() {
        eprintln!("tickmux: no valid instruments to stream");
        feed.shutdown().await;
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let code = stream_feed(&feed, instruments, &args).await;
    feed.shutdown().await;
    code
}

async fn stream_feed(
    feed: &setup::Feed,
    instruments: Vec<std::sync::Arc<crate::model::Instrument>>,
    args: &StreamArgs,
) -> anyhow::Result<ExitCode> {
    let consumer = feed.engine.stream().await?;
    consumer.subscribe(instruments, args.mode).await?;
    let mut health = feed.engine.health();
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout());
    let limit = args.count.unwrap_or(u64::MAX);
    let mut ticks = 0u64;
    let mut last: Option<HealthKey> = None;
    let stop = super::shutdown_signal();
    let timer = deadline(args.seconds);
    tokio::pin!(stop, timer);

    // Mark the current snapshot unseen so the first line describes where we start.
    health.mark_changed();
    loop {
        let status = tokio::select! {
            _ = &mut stop => break,
            _ = &mut timer => break,
            changed = health.changed() => {
                if changed.is_err() {
                    break;
                }
                let h = health.borrow_and_update().clone();
                let key = HealthKey::of(&h);
                if last.as_ref() == Some(&key) {
                    continue;
                }
                last = Some(key);
                match write_line(&mut out, &health_json(&h))? {
                    Out::Ok => flush(&mut out)?,
                    closed => closed,
                }
            }
            item = consumer.recv() => {
                let Some(item) = item else {
                    flush(&mut out)?;
                    anyhow::bail!("the feed engine stopped");
                };
                // Write everything already queued, then flush once: one syscall per batch.
                let mut next = Some(item);
                let mut status = Out::Ok;
                while let Some(it) = next.take() {
                    status = write_line(&mut out, &tick_json(&it))?;
                    ticks += 1;
                    if matches!(status, Out::Closed) || ticks >= limit {
                        break;
                    }
                    next = consumer.try_recv();
                }
                match status {
                    Out::Ok => flush(&mut out)?,
                    closed => closed,
                }
            }
        };
        if matches!(status, Out::Closed) || ticks >= limit {
            break;
        }
    }
    let _ = flush(&mut out);
    tracing::info!(ticks, dropped = consumer.dropped(), "stream finished");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_line_is_tagged_json() {
        let v: serde_json::Value = serde_json::from_str(&health_json(&Health::default())).unwrap();
        assert_eq!(v["type"], "health");
        assert!(v["state"].is_string() && v["ts"].is_i64());
    }
}
