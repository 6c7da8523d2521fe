//! Bringing a feed up for a surface: the configured broker or the simulator, the instrument
//! master, the engine, the token-file watcher and the market-hours signal.

use crate::config::{self, Config};
use crate::engine::{self, EngineHandle};
use crate::instruments::InstrumentMaster;
use crate::sim::{Sim, SimConfig};
use anyhow::Context as _;
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Asia::Kolkata;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A running feed and what it needs to stop cleanly.
pub struct Feed {
    /// The engine.
    pub engine: EngineHandle,
    /// The instrument master of the broker (or simulator).
    pub master: InstrumentMaster,
    /// The embedded simulator, when one was started.
    pub sim: Option<Sim>,
    /// What feeds us, for humans: `built-in simulator`, `kite (account AB1234)`.
    pub source: String,
    tasks: Vec<JoinHandle<()>>,
}

/// Where the feed will come from, without starting anything (for the first stderr line).
pub fn describe_source(cfg: &Config) -> String {
    let proto = match cfg.sim_broker() {
        crate::config::BrokerKind::Kite => String::new(),
        other => format!(" ({} protocol)", other.as_str()),
    };
    match (&cfg.broker, cfg.external_sim()) {
        (None, _) => format!("built-in simulator{proto}"),
        (Some(_), Some(ep)) => format!("simulator at {}{proto}", ep.ws_url),
        (Some(_), None) if cfg.uses_sim() => format!("built-in simulator{proto}"),
        (Some(b), None) if b.account.is_empty() => b.kind.as_str().into(),
        (Some(b), None) => format!("{} (account {})", b.kind.as_str(), b.account),
    }
}

/// Start the feed the config asks for.
pub async fn start(cfg: &Config) -> anyhow::Result<Feed> {
    let source = describe_source(cfg);
    let (setup, sim, market_open) = if cfg.uses_sim() {
        match cfg.external_sim() {
            Some(ep) => (cfg.sim_setup(ep, &SimConfig::default()), None, true),
            None => {
                let sim_cfg = cfg.sim_config();
                let sim = Sim::start(sim_cfg.clone())
                    .await
                    .context("starting the built-in simulator")?;
                let ep = crate::adapters::Endpoints {
                    ws_url: sim.ws_url(),
                    rest_url: sim.rest_url(),
                    instruments_url: None,
                };
                // The simulator trades around the clock, so its market is always open.
                (cfg.sim_setup(ep, &sim_cfg), Some(sim), true)
            }
        }
    } else {
        (cfg.broker_setup()?, None, market_open_at(Utc::now()))
    };
    // Real brokers' masters are cached for the day; the simulator's is local and instant.
    let cache = if cfg.uses_sim() {
        None
    } else {
        crate::config::cache_dir()
    };
    let master = crate::instruments::cache::load(
        setup.adapter.clone(),
        &setup.engine.endpoints,
        &setup.creds,
        cache.as_deref(),
        Utc::now(),
    )
    .await
    .with_context(|| {
        format!(
            "loading instruments from {}",
            setup
                .engine
                .endpoints
                .instruments_url
                .as_deref()
                .unwrap_or(&setup.engine.endpoints.rest_url)
        )
    })?;
    tracing::info!(%source, instruments = master.len(), "instrument master loaded");
    let engine = engine::spawn(
        setup.adapter.clone(),
        setup.creds.clone(),
        setup.engine.clone(),
        market_open,
    );
    let mut tasks = Vec::new();
    if let Some(t) = config::spawn_token_watcher(&setup, engine.clone()) {
        tasks.push(t);
    }
    if sim.is_none() && cfg.external_sim().is_none() {
        tasks.push(spawn_market_clock(engine.clone(), market_open));
    }
    Ok(Feed {
        engine,
        master,
        sim,
        source,
        tasks,
    })
}

impl Feed {
    /// Stop the engine, the helpers and the simulator; bounded so exit never hangs.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.engine.shutdown()).await;
        if let Some(sim) = self.sim {
            let _ = tokio::time::timeout(Duration::from_secs(5), sim.shutdown()).await;
        }
    }
}

/// NSE/BSE cash session: Monday to Friday, 09:15 to 15:30 IST, whatever the host's zone.
/// Exchange holidays and the commodity session are not modelled yet.
pub fn market_open_at(now: DateTime<Utc>) -> bool {
    let ist = now.with_timezone(&Kolkata);
    if matches!(ist.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    let minute = ist.hour() * 60 + ist.minute();
    (9 * 60 + 15..15 * 60 + 30).contains(&minute)
}

/// Tell the engine when the market opens or closes (drives its data watchdog).
fn spawn_market_clock(engine: EngineHandle, mut open: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            let now = market_open_at(Utc::now());
            if now != open {
                if engine.set_market_open(now).await.is_err() {
                    return;
                }
                open = now;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn market_hours_are_ist_whatever_the_host_zone() {
        // 2025-01-06 was a Monday. 09:15 IST = 03:45 UTC.
        let at = |h, m| Utc.with_ymd_and_hms(2025, 1, 6, h, m, 0).unwrap();
        assert!(!market_open_at(at(3, 44)));
        assert!(market_open_at(at(3, 45)));
        assert!(market_open_at(at(9, 59)));
        assert!(!market_open_at(at(10, 0)));
        assert!(!market_open_at(
            Utc.with_ymd_and_hms(2025, 1, 4, 6, 0, 0).unwrap()
        ));
    }
}
