//! `tickmux serve`: the engine and the OpenAlgo-compatible proxy, headless (for a VPS). Logs
//! go to the log file; stderr gets a start line and one line per engine state change;
//! `--json` writes health (with the proxy's clients) as one JSON object per line on stdout.
//! `tickmux key` prints (or rotates) the proxy's API key.

use super::{deadline, parse_seconds, setup, unix_ms};
use crate::config::Config;
use crate::engine::health::Health;
use crate::proxy::{Proxy, ProxyStats, apikey};
use clap::Args;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `tickmux serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (default: [proxy] listen, 127.0.0.1:8765).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Health and proxy clients as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// Arguments of `tickmux key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Replace the key with a new one (clients must use the new key).
    #[arg(long)]
    pub rotate: bool,
    /// Print the key file's path instead of the key.
    #[arg(long)]
    pub path: bool,
}

/// How often `--json` repeats an unchanged health line.
const JSON_EVERY: Duration = Duration::from_secs(10);

/// `{"type":"health",...,"proxy":{...}}`.
pub fn health_line(h: &Health, stats: &ProxyStats) -> String {
    let mut v = serde_json::to_value(h).unwrap_or_default();
    if let serde_json::Value::Object(o) = &mut v {
        o.insert("type".into(), "health".into());
        o.insert("ts".into(), unix_ms().into());
        o.insert(
            "proxy".into(),
            serde_json::to_value(stats).unwrap_or_default(),
        );
    }
    v.to_string()
}

/// What makes a new `--json` line worth printing before `JSON_EVERY`.
fn line_key(h: &Health, s: &ProxyStats) -> (String, String, u64, usize, usize, Option<String>) {
    (
        h.state.as_str().to_string(),
        format!("{:?}", h.quality),
        h.reconnects,
        s.clients.len(),
        s.clients.iter().map(|c| c.subscriptions).sum(),
        h.last_error.as_ref().map(|e| e.text.clone()),
    )
}

/// Run `tickmux serve`.
pub async fn run(cfg: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let key_path = cfg.proxy.key_path(cfg).ok_or_else(|| {
        anyhow::anyhow!("no data directory for the API key; set [proxy] key_file")
    })?;
    let key = apikey::load_or_create(&key_path)?;
    let mut pcfg = cfg.proxy.proxy_config();
    if let Some(l) = args.listen {
        pcfg.listen = l;
    }
    let feed = setup::start(cfg).await?;
    let master = std::sync::Arc::new(feed.master.clone());
    let proxy = match Proxy::start(pcfg, feed.engine.clone(), master, key).await {
        Ok(p) => p,
        Err(e) => {
            feed.shutdown().await;
            return Err(e);
        }
    };
    eprintln!(
        "tickmux serve: OpenAlgo-compatible proxy on {} · feed: {} · API key: `tickmux key` ({}) · logs: {}",
        proxy.url(),
        feed.source,
        key_path.display(),
        cfg.log_dir()
            .map_or_else(|| "off".into(), |d| d.display().to_string())
    );
    let code = watch(&feed, &proxy, &args).await;
    eprintln!("tickmux serve: shutting down");
    proxy.shutdown().await;
    feed.shutdown().await;
    code
}

async fn watch(feed: &setup::Feed, proxy: &Proxy, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut health = feed.engine.health();
    let mut stats = proxy.stats();
    let stop = super::shutdown_signal();
    let timer = deadline(args.seconds);
    tokio::pin!(stop, timer);
    let mut every = tokio::time::interval(JSON_EVERY);
    let mut last_state = None;
    let mut last_key = None;
    health.mark_changed();
    loop {
        let mut force = false;
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut timer => break,
            r = health.changed() => {
                if r.is_err() {
                    anyhow::bail!("the feed engine stopped");
                }
            }
            r = stats.changed() => {
                if r.is_err() {
                    break;
                }
            }
            _ = every.tick() => force = true,
        }
        let h = health.borrow_and_update().clone();
        let s = stats.borrow_and_update().clone();
        if last_state != Some(h.state) {
            last_state = Some(h.state);
            let err = h
                .last_error
                .as_ref()
                .map(|e| format!(" · last error: {}", e.text))
                .unwrap_or_default();
            eprintln!(
                "tickmux serve: {} · {} clients · quality {:.0}%{err}",
                h.state.as_str(),
                s.authenticated(),
                h.quality_pct
            );
        }
        if args.json {
            let key = line_key(&h, &s);
            if force || last_key.as_ref() != Some(&key) {
                last_key = Some(key);
                let mut out = std::io::stdout().lock();
                let line = health_line(&h, &s);
                match writeln!(out, "{line}").and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // `| head`: stop quietly.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `tickmux key`.
pub fn key(cfg: &Config, args: KeyArgs) -> anyhow::Result<ExitCode> {
    let path = cfg.proxy.key_path(cfg).ok_or_else(|| {
        anyhow::anyhow!("no data directory for the API key; set [proxy] key_file")
    })?;
    if args.path {
        println!("{}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let key = if args.rotate {
        let k = apikey::rotate(&path)?;
        eprintln!("tickmux: new API key written to {}", path.display());
        k
    } else {
        apikey::load_or_create(&path)?
    };
    println!("{}", key.expose());
    Ok(ExitCode::SUCCESS)
}
