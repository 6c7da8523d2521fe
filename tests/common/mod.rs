//! Shared rig for engine tests: a real simulator on 127.0.0.1, an engine with short timers,
//! and condition polling with timeouts (no bare sleeps).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tickmux::adapters::{Adapter, Credentials, Endpoints};
use tickmux::config::{self, BrokerKind};
use tickmux::engine::backoff::BackoffConfig;
use tickmux::engine::health::Health;
use tickmux::engine::{self, EngineConfig, EngineHandle};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::{FeedKey, Instrument, Mode};
use tickmux::secret::Secret;
use tickmux::sim::{Sim, SimBroker, SimConfig, SimControl};
use tokio::sync::watch;

/// Generous bound for conditions that normally hold within milliseconds.
pub const WAIT: Duration = Duration::from_secs(10);

/// Timers scaled down so the fault matrix runs in seconds.
pub fn fast_config(ws_url: &str, rest_url: &str) -> EngineConfig {
    let mut c = EngineConfig::new(Endpoints {
        ws_url: ws_url.into(),
        rest_url: rest_url.into(),
        instruments_url: None,
    });
    c.seed = 30; // F30: a failing run is reproducible from its seed
    c.transport_timeout = Some(Duration::from_millis(400));
    c.stale_after = Duration::from_millis(600);
    c.connect_timeout = Duration::from_millis(500);
    c.health_interval = Duration::from_millis(20);
    c.backoff = BackoffConfig {
        base: Duration::from_millis(40),
        factor: 2.0,
        cap: Duration::from_millis(400),
        max_attempts: 1000,
        jitter: 0.2,
    };
    c
}

/// Simulator settings for tests: fast heartbeats, steady ticks.
pub fn sim_config() -> SimConfig {
    SimConfig {
        seed: 42,
        tick_rate: 400,
        heartbeat_interval: Duration::from_millis(100),
        ..SimConfig::default()
    }
}

/// The simulator's credentials (every protocol's).
pub fn sim_creds(cfg: &SimConfig) -> Credentials {
    Credentials {
        api_key: Secret::new(cfg.api_key.clone()),
        access_token: Secret::new(cfg.access_token.clone()),
        client_code: cfg.client_code.clone(),
        feed_token: Secret::new(cfg.feed_token.clone()),
    }
}

/// The config's name for a simulated broker.
pub fn kind(b: SimBroker) -> BrokerKind {
    match b {
        SimBroker::Kite => BrokerKind::Kite,
        SimBroker::Angel => BrokerKind::Angel,
        SimBroker::Shoonya => BrokerKind::Shoonya,
        SimBroker::Flattrade => BrokerKind::Flattrade,
    }
}

/// A simulator, an engine on it and the instrument master.
pub struct Rig {
    pub broker: SimBroker,
    pub adapter: Arc<dyn Adapter>,
    pub sim: Sim,
    pub ctl: SimControl,
    pub engine: EngineHandle,
    pub master: InstrumentMaster,
    pub sim_cfg: SimConfig,
}

impl Rig {
    /// Start with defaults.
    pub async fn start() -> Rig {
        Rig::start_with(sim_config(), |_| {}).await
    }

    /// Start with a simulator config and engine-config tweaks (Kite).
    pub async fn start_with(sim_cfg: SimConfig, tweak: impl FnOnce(&mut EngineConfig)) -> Rig {
        Rig::start_for(SimBroker::Kite, sim_cfg, tweak).await
    }

    /// Start on the simulator speaking `broker`'s protocol, with that broker's adapter.
    pub async fn start_for(
        broker: SimBroker,
        sim_cfg: SimConfig,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> Rig {
        let sim = Sim::start(sim_cfg.clone()).await.expect("simulator starts");
        let ep = config::sim_endpoints(kind(broker), &sim.ws_url(), &sim.rest_url());
        let mut cfg = fast_config(&ep.ws_url, &ep.rest_url);
        cfg.endpoints = ep;
        let adapter = kind(broker).adapter();
        cfg.idle_policy = adapter.idle_policy();
        tweak(&mut cfg);
        let creds = sim_creds(&sim_cfg);
        let master = InstrumentMaster::fetch(&*adapter, &cfg.endpoints, &creds)
            .await
            .expect("instrument master from the simulator")
            .with_adapter(adapter.clone());
        let engine = engine::spawn(adapter.clone(), creds, cfg, true);
        Rig {
            broker,
            adapter,
            ctl: sim.control(),
            sim,
            engine,
            master,
            sim_cfg,
        }
    }

    /// Resolve symbols (panics on unknown: test fixtures are known).
    pub fn inst(&self, names: &[&str]) -> Vec<Arc<Instrument>> {
        names
            .iter()
            .map(|n| self.master.resolve(n).expect(n))
            .collect()
    }

    /// The feed key of a symbol on this broker.
    pub fn key(&self, name: &str) -> FeedKey {
        self.master.resolve(name).expect(name).key
    }

    /// The simulator's token of a symbol (what token-list faults name).
    pub fn token(&self, name: &str) -> u32 {
        self.key(name).token
    }

    /// Symbols and modes as the simulator should hold them.
    pub fn want(&self, pairs: &[(&str, Mode)]) -> BTreeMap<FeedKey, Mode> {
        pairs.iter().map(|(n, m)| (self.key(n), *m)).collect()
    }

    /// A mode as this broker's wire has it: Noren's touchline carries LTP and Quote alike.
    pub fn wire_mode(&self, m: Mode) -> Mode {
        match (self.broker, m) {
            (SimBroker::Shoonya | SimBroker::Flattrade, Mode::Ltp) => Mode::Quote,
            _ => m,
        }
    }

    /// The simulator's view of the one open connection's subscriptions, every protocol.
    pub fn sim_keys(&self) -> BTreeMap<FeedKey, Mode> {
        let s = self.ctl.stats();
        assert!(
            s.connections.len() <= 1,
            "more than one upstream connection: {}",
            s.connections.len()
        );
        s.connections
            .first()
            .map(|c| c.keys.clone())
            .unwrap_or_default()
    }

    /// Wait until the simulator holds exactly `want` on its single connection.
    pub async fn wait_sim_keys(&self, want: &BTreeMap<FeedKey, Mode>) {
        let ctl = self.ctl.clone();
        let want: BTreeMap<FeedKey, Mode> =
            want.iter().map(|(k, m)| (*k, self.wire_mode(*m))).collect();
        let want2 = want.clone();
        poll(WAIT, "simulator subscriptions == desired", move || {
            let s = ctl.stats();
            s.connections.len() == 1 && s.connections[0].keys == want2
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: simulator subscriptions {:?} != desired {:?}",
                self.broker.as_str(),
                self.sim_keys(),
                want
            )
        });
    }

    /// Health watch.
    pub fn health(&self) -> watch::Receiver<Health> {
        self.engine.health()
    }

    /// Wait for a health condition.
    pub async fn wait_health(&self, what: &str, f: impl Fn(&Health) -> bool) -> Health {
        wait_health(&mut self.health(), WAIT, what, f).await
    }

    /// Wait until the engine is live on connection number `epoch` (or later).
    pub async fn wait_live(&self, epoch: u64) -> Health {
        self.wait_health(&format!("live on connection #{epoch}"), |h| {
            h.state == engine::EngineState::Live && h.epoch >= epoch
        })
        .await
    }

    /// The simulator's view of the one open connection's subscriptions (Kite tokens).
    pub fn sim_subscriptions(&self) -> BTreeMap<u32, Mode> {
        self.sim_keys()
            .into_iter()
            .map(|(k, m)| (k.token, m))
            .collect()
    }

    /// Wait until the simulator holds exactly `want` (Kite tokens) on its single connection.
    pub async fn wait_sim_subscriptions(&self, want: &BTreeMap<u32, Mode>) {
        let keys = want.iter().map(|(t, m)| (FeedKey::kite(*t), *m)).collect();
        self.wait_sim_keys(&keys).await;
    }

    /// Stop everything.
    pub async fn stop(self) {
        self.engine.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// Wait for a health snapshot satisfying `f`; panics with the last snapshot on timeout.
pub async fn wait_health(
    rx: &mut watch::Receiver<Health>,
    limit: Duration,
    what: &str,
    f: impl Fn(&Health) -> bool,
) -> Health {
    let r = tokio::time::timeout(limit, async {
        loop {
            {
                let h = rx.borrow_and_update();
                if f(&h) {
                    return h.clone();
                }
            }
            if rx.changed().await.is_err() {
                let h = rx.borrow().clone();
                if f(&h) {
                    return h;
                }
                panic!("engine stopped while waiting for {what}: {h:#?}");
            }
        }
    })
    .await;
    match r {
        Ok(h) => h,
        Err(_) => panic!(
            "timed out waiting for {what}; last health: {:#?}",
            rx.borrow()
        ),
    }
}

/// Poll a condition every few ms until it holds or `limit` passes.
pub async fn poll(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let r = tokio::time::timeout(limit, async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            if f() {
                return;
            }
        }
    })
    .await;
    r.map_err(|_| format!("timed out waiting for {what}"))
}

/// Poll an async condition.
pub async fn poll_async<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let r = tokio::time::timeout(limit, async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            if f().await {
                return;
            }
        }
    })
    .await;
    if r.is_err() {
        panic!("timed out waiting for {what}");
    }
}

/// Let simulated time pass in a way the test can see: wait until the simulator has sent `n`
/// more heartbeats (or ticks) than now.
pub async fn wait_sim_progress(ctl: &SimControl, heartbeats: u64) {
    let start = ctl.stats().heartbeats_sent;
    let c = ctl.clone();
    poll(WAIT, "simulator heartbeats", move || {
        c.stats().heartbeats_sent >= start + heartbeats
    })
    .await
    .unwrap();
}

/// Wait until the engine has published `n` more health snapshots (time passing, observed).
pub async fn wait_health_ticks(rx: &mut watch::Receiver<Health>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(WAIT, rx.changed())
            .await
            .expect("health keeps being published")
            .expect("engine alive");
    }
}

/// Tokens → modes.
pub fn want(pairs: &[(u32, Mode)]) -> BTreeMap<u32, Mode> {
    pairs.iter().copied().collect()
}
