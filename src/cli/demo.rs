//! `tickmux demo`: the starter watchlist on the configured broker or the built-in simulator,
//! rendered as a plain-text screen once a second. Unlike the TUI it needs no terminal, so it
//! also serves pipes and logs.

use super::{deadline, parse_seconds, setup, shutdown_signal};
use crate::config::Config;
use crate::engine::EngineEvent;
use crate::engine::book::BookEntry;
use crate::engine::health::{Health, QualityLabel};
use crate::model::{Instrument, Mode};
use chrono::TimeZone;
use chrono_tz::Asia::Kolkata;
use clap::Args;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Arguments of the demo.
#[derive(Debug, Args, Default)]
pub struct DemoArgs {
    /// Stop after N seconds.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// The starter watchlist (also the TUI's first watchlist on the simulator).
pub const STARTER: &[&str] = &[
    "NSE:INFY",
    "NSE:RELIANCE",
    "NSE:TCS",
    "NSE:HDFCBANK",
    "NSE:NIFTY 50",
    "NSE:NIFTY BANK",
];

/// Events kept on screen.
const EVENTS_SHOWN: usize = 5;

/// Run the demo until Ctrl+C, SIGTERM or `--seconds`.
pub async fn run(cfg: &Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if cfg.uses_sim() {
        eprintln!(
            "tickmux: no broker configured; demo on the {} (the TUI is `tickmux` with no subcommand)",
            setup::describe_source(cfg)
        );
    } else {
        eprintln!(
            "tickmux: demo on the configured broker: {}",
            setup::describe_source(cfg)
        );
    }
    let feed = setup::start(cfg).await?;
    let (list, unknown) = feed.master.resolve_all(STARTER.iter().copied());
    for e in &unknown {
        eprintln!("tickmux: {e}");
    }
    // Listen before subscribing: the first subscription triggers the connect events.
    let mut events = feed.engine.events();
    let consumer = feed.engine.consumer().await?;
    consumer.subscribe(list.clone(), Mode::Quote).await?;
    let mut recent: VecDeque<EngineEvent> = VecDeque::new();
    let health = feed.engine.health();
    let clear = std::io::stdout().is_terminal();
    let mut frame = tokio::time::interval(Duration::from_secs(1));
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stop = shutdown_signal();
    let timer = deadline(args.seconds);
    tokio::pin!(stop, timer);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut timer => break,
            ev = events.recv() => match ev {
                Ok(e) => {
                    recent.push_back(e);
                    if recent.len() > EVENTS_SHOWN {
                        recent.pop_front();
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = frame.tick() => {
                let rows: Vec<_> = list
                    .iter()
                    .map(|i| (i.clone(), feed.engine.book().get(&i.key)))
                    .collect();
                let h = health.borrow().clone();
                let screen = render(&feed.source, &h, &rows, &recent, Instant::now());
                let mut out = std::io::stdout().lock();
                let res = if clear {
                    write!(out, "\x1b[H\x1b[2J{screen}")
                } else {
                    writeln!(out, "{screen}")
                };
                if res.and_then(|_| out.flush()).is_err() {
                    break; // stdout closed: nothing left to show
                }
            }
        }
    }
    drop(consumer);
    feed.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn quality_label(q: QualityLabel) -> &'static str {
    match q {
        QualityLabel::Excellent => "EXCELLENT",
        QualityLabel::Degraded => "DEGRADED",
        QualityLabel::Poor => "POOR",
    }
}

fn ist_time(unix_ms: i64) -> String {
    Kolkata
        .timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

fn age(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// Thousands separators for volumes.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One screen: header, one line per instrument, recent events.
pub fn render(
    source: &str,
    h: &Health,
    rows: &[(Arc<Instrument>, Option<BookEntry>)],
    events: &VecDeque<EngineEvent>,
    now: Instant,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tickmux | {source} | {} | quality {} {:.0}% | {:.1} ticks/s | last tick {} | {} IST",
        h.state.as_str(),
        quality_label(h.quality),
        h.quality_pct,
        h.ticks_per_sec,
        age(h.last_tick_age_ms),
        ist_time(super::unix_ms()),
    );
    let mut extra = format!(
        "reconnects {} | subscriptions {}/{}",
        h.reconnects, h.applied, h.desired
    );
    if let Some(b) = &h.backoff {
        let _ = write!(
            extra,
            " | backoff {}/{} next in {:.1} s",
            b.attempt,
            b.max,
            b.next_in_ms as f64 / 1000.0
        );
    }
    if let Some(e) = &h.last_error {
        let _ = write!(extra, " | last error {}: {}", e.kind.as_str(), e.text);
    }
    let _ = writeln!(s, "{extra}");
    let _ = writeln!(
        s,
        "{:<18} {:>11} {:>10} {:>15} {:>7}",
        "SYMBOL", "LTP", "CHANGE", "VOLUME", "AGE"
    );
    for (inst, entry) in rows {
        let name = inst.display_name();
        let Some(e) = entry else {
            let _ = writeln!(s, "{name:<18} {:>11}", "waiting");
            continue;
        };
        let (chg, vol) = match &e.tick.quote {
            Some(q) => {
                // Arrow from the shown (rounded) value, so "-0.00" never appears.
                let pct = (q.change * 100.0).round() / 100.0;
                let text = if pct > 0.0 {
                    format!("▲ {pct:+.2}%")
                } else if pct < 0.0 {
                    format!("▼ {pct:+.2}%")
                } else {
                    "= 0.00%".to_string()
                };
                (text, grouped(q.volume))
            }
            None => ("-".into(), "-".into()),
        };
        let since = now.saturating_duration_since(e.updated).as_millis() as u64;
        let _ = writeln!(
            s,
            "{name:<18} {:>11} {chg:>10} {vol:>15} {:>7}",
            e.tick.ltp.to_string(),
            age(Some(since))
        );
    }
    let _ = writeln!(s, "events:");
    if events.is_empty() {
        let _ = writeln!(s, "  (none yet)");
    }
    for ev in events {
        let _ = writeln!(
            s,
            "  {} {:<14} {}",
            ist_time(ev.at_unix_ms),
            ev.kind,
            ev.text
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
