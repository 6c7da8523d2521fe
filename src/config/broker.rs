//! `[broker]`: which broker feeds the engine, its URLs and where its secrets come from; and
//! the simulator's stand-in for each broker. Secrets never come from the file (tokens rotate
//! daily): environment variables or token files, which [`spawn_token_watcher`] re-reads.

use super::{Config, ConfigError};
use crate::adapters::angel::{self, Angel};
use crate::adapters::kite::Kite;
use crate::adapters::noren::{self, Noren};
use crate::adapters::openalgo::{self, OpenAlgo};
use crate::adapters::{Adapter, Credentials, Endpoints};
use crate::engine::{EngineConfig, EngineHandle};
use crate::secret::Secret;
use crate::sim::SimConfig;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which upstream feeds the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// Zerodha Kite Connect.
    #[default]
    Kite,
    /// Angel One SmartAPI WebSocket 2.0.
    Angel,
    /// Shoonya (Finvasia), NorenOMS.
    Shoonya,
    /// Flattrade, NorenOMS.
    Flattrade,
    /// An OpenAlgo-compatible proxy (OpenAlgo, or another tickmux's `serve`).
    Openalgo,
    /// The built-in simulator (or a `tickmux sim` process when both URLs are given); the
    /// protocol it speaks is `[sim] broker`.
    Sim,
}

impl BrokerKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerKind::Kite => "kite",
            BrokerKind::Angel => "angel",
            BrokerKind::Shoonya => "shoonya",
            BrokerKind::Flattrade => "flattrade",
            BrokerKind::Openalgo => "openalgo",
            BrokerKind::Sim => "sim",
        }
    }

    /// The adapter for this broker (the simulator's protocol for `Sim` is `[sim] broker`).
    pub fn adapter(self) -> Arc<dyn Adapter> {
        match self {
            BrokerKind::Kite | BrokerKind::Sim => Arc::new(Kite),
            BrokerKind::Angel => Arc::new(Angel),
            BrokerKind::Shoonya => Arc::new(Noren::shoonya()),
            BrokerKind::Flattrade => Arc::new(Noren::flattrade()),
            BrokerKind::Openalgo => Arc::new(OpenAlgo::default()),
        }
    }

    fn defaults(self) -> Defaults {
        match self {
            BrokerKind::Kite | BrokerKind::Sim => Defaults {
                ws: KITE_WS_URL,
                rest: KITE_REST_URL,
                instruments: None,
                api_key_env: Some(DEFAULT_API_KEY_ENV),
                token_env: Some(DEFAULT_ACCESS_TOKEN_ENV),
                client_code_env: None,
                feed_token_env: None,
                token_hint: "Kite tokens expire daily at 06:00 IST",
            },
            BrokerKind::Angel => Defaults {
                ws: angel::WS_URL,
                rest: angel::REST_URL,
                instruments: Some(angel::INSTRUMENTS_URL),
                api_key_env: Some("ANGEL_API_KEY"),
                token_env: Some("ANGEL_JWT"),
                client_code_env: Some("ANGEL_CLIENT_CODE"),
                feed_token_env: Some("ANGEL_FEED_TOKEN"),
                token_hint: "the JWT and feed token come from generateSession",
            },
            BrokerKind::Shoonya => Defaults {
                ws: noren::SHOONYA_URLS.0,
                rest: noren::SHOONYA_URLS.1,
                instruments: Some(noren::SHOONYA_URLS.2),
                api_key_env: None,
                token_env: Some("SHOONYA_SUSERTOKEN"),
                client_code_env: Some("SHOONYA_USER"),
                feed_token_env: None,
                token_hint: "the susertoken comes from QuickAuth and lasts a trading day",
            },
            BrokerKind::Flattrade => Defaults {
                ws: noren::FLATTRADE_URLS.0,
                rest: noren::FLATTRADE_URLS.1,
                instruments: Some(noren::FLATTRADE_URLS.2),
                api_key_env: None,
                token_env: Some("FLATTRADE_TOKEN"),
                client_code_env: Some("FLATTRADE_USER"),
                feed_token_env: None,
                token_hint: "the access token comes from the OAuth login and lasts a trading day",
            },
            BrokerKind::Openalgo => Defaults {
                ws: openalgo::WS_URL,
                rest: "",
                instruments: None,
                api_key_env: Some("OPENALGO_API_KEY"),
                token_env: None,
                client_code_env: None,
                feed_token_env: None,
                token_hint: "",
            },
        }
    }
}

/// What each broker needs, and where it comes from by default.
struct Defaults {
    ws: &'static str,
    rest: &'static str,
    instruments: Option<&'static str>,
    /// `None` = no API key.
    api_key_env: Option<&'static str>,
    /// `None` = no daily token.
    token_env: Option<&'static str>,
    client_code_env: Option<&'static str>,
    feed_token_env: Option<&'static str>,
    token_hint: &'static str,
}

/// `[broker]`: the upstream account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker adapter; a `[broker]` section without `kind` means Kite.
    pub kind: BrokerKind,
    /// Label shown until the token check names the user.
    pub account: String,
    /// WebSocket URL (default: the broker's production URL).
    pub ws_url: Option<String>,
    /// REST root (default: the broker's production URL).
    pub rest_url: Option<String>,
    /// Instrument master URL or root (Angel's JSON file; the root of Noren's zips).
    pub instruments_url: Option<String>,
    /// API key; allowed in the file (it identifies the app, it does not grant access).
    #[serde(deserialize_with = "de_secret")]
    pub api_key: Option<Secret>,
    /// Environment variable holding the API key when `api_key` is not set.
    pub api_key_env: Option<String>,
    /// Environment variable holding the daily token.
    pub access_token_env: Option<String>,
    /// File holding the daily token (trimmed); wins over the environment and is watched.
    pub access_token_file: Option<PathBuf>,
    /// Angel client code / Noren user id (not a secret).
    pub client_code: Option<String>,
    /// Environment variable holding the client code when `client_code` is not set.
    pub client_code_env: Option<String>,
    /// Environment variable holding Angel's feed token.
    pub feed_token_env: Option<String>,
    /// File holding Angel's feed token; wins over the environment and is watched.
    pub feed_token_file: Option<PathBuf>,
    /// Never accepted: present only to explain why (tokens rotate daily).
    #[serde(deserialize_with = "reject_access_token")]
    pub access_token: Option<()>,
}

fn de_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Some(Secret::new(String::deserialize(d)?)))
}

fn reject_access_token<'de, D: Deserializer<'de>>(_: D) -> Result<Option<()>, D::Error> {
    Err(serde::de::Error::custom(
        "access tokens are not read from the config file (they rotate daily); \
         set the KITE_ACCESS_TOKEN environment variable (or the broker's) or `access_token_file`",
    ))
}

/// Everything needed to spawn an engine on a broker.
#[derive(Clone)]
pub struct FeedSetup {
    /// The adapter.
    pub adapter: Arc<dyn Adapter>,
    /// Credentials.
    pub creds: Credentials,
    /// Engine settings, endpoints included.
    pub engine: EngineConfig,
    /// Token files to watch: (daily token, Angel feed token).
    pub token_file: Option<PathBuf>,
    /// Angel's feed token file, watched with the token file.
    pub feed_token_file: Option<PathBuf>,
}

/// Kite's production WebSocket root.
pub const KITE_WS_URL: &str = "wss://ws.kite.trade";
/// Kite's production REST root.
pub const KITE_REST_URL: &str = "https://api.kite.trade";
/// Default environment variable for Kite's API key.
pub const DEFAULT_API_KEY_ENV: &str = "KITE_API_KEY";
/// Default environment variable for Kite's access token.
pub const DEFAULT_ACCESS_TOKEN_ENV: &str = "KITE_ACCESS_TOKEN";

/// The simulator's URLs for a broker's protocol, from its WebSocket and HTTP roots (the
/// paths the simulator serves each protocol under).
pub fn sim_endpoints(broker: BrokerKind, ws_root: &str, http_root: &str) -> Endpoints {
    let (ws, http) = (
        ws_root.trim_end_matches('/'),
        http_root.trim_end_matches('/'),
    );
    match broker {
        BrokerKind::Angel => Endpoints {
            ws_url: format!("{ws}/smart-stream"),
            rest_url: http.to_string(),
            instruments_url: Some(format!("{http}/OpenAPI_File/files/OpenAPIScripMaster.json")),
        },
        BrokerKind::Shoonya => Endpoints {
            ws_url: format!("{ws}/NorenWSTP/"),
            rest_url: format!("{http}/NorenWClientTP/"),
            instruments_url: Some(http.to_string()),
        },
        BrokerKind::Flattrade => Endpoints {
            ws_url: format!("{ws}/PiConnectWSAPI/"),
            rest_url: format!("{http}/PiConnectAPI/"),
            instruments_url: Some(http.to_string()),
        },
        _ => Endpoints::new(ws, http),
    }
}

impl Config {
    /// True when no real broker is configured (or `kind = "sim"`).
    pub fn uses_sim(&self) -> bool {
        self.broker
            .as_ref()
            .is_none_or(|b| b.kind == BrokerKind::Sim)
    }

    /// The broker whose protocol the simulator speaks (`[sim] broker`, default Kite).
    pub fn sim_broker(&self) -> BrokerKind {
        self.sim.broker
    }

    /// Roots of an external simulator (`kind = "sim"` with both URLs set), if any.
    pub fn external_sim(&self) -> Option<Endpoints> {
        let b = self.broker.as_ref().filter(|b| b.kind == BrokerKind::Sim)?;
        Some(Endpoints::new(b.ws_url.clone()?, b.rest_url.clone()?))
    }

    /// Setup for a simulator at these roots (its WebSocket and HTTP ports), speaking
    /// `[sim] broker`'s protocol, with its credentials.
    pub fn sim_setup(&self, roots: Endpoints, sim: &SimConfig) -> FeedSetup {
        let broker = self.sim_broker();
        let adapter = broker.adapter();
        let endpoints = sim_endpoints(broker, &roots.ws_url, &roots.rest_url);
        let mut engine = self.engine_config(endpoints, &*adapter);
        if engine.account.is_empty() {
            engine.account = "sim".into();
        }
        FeedSetup {
            creds: Credentials {
                api_key: Secret::new(sim.api_key.clone()),
                access_token: Secret::new(sim.access_token.clone()),
                client_code: sim.client_code.clone(),
                feed_token: Secret::new(sim.feed_token.clone()),
            },
            adapter,
            engine,
            token_file: None,
            feed_token_file: None,
        }
    }

    /// Setup for the configured real broker, reading secrets from the process environment.
    pub fn broker_setup(&self) -> Result<FeedSetup, ConfigError> {
        self.broker_setup_with(|k| std::env::var(k).ok())
    }

    /// [`Config::broker_setup`] with an explicit environment lookup (tests, embedding).
    pub fn broker_setup_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<FeedSetup, ConfigError> {
        let b = self.broker.clone().unwrap_or_default();
        let d = b.kind.defaults();
        let name = b.kind.as_str();
        let file = self
            .source
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        let present = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let api_key = match (b.api_key.clone().filter(|k| !k.is_empty()), d.api_key_env) {
            (Some(k), _) => k,
            (None, None) => Secret::default(),
            (None, Some(default_env)) => {
                let key_env = b.api_key_env.as_deref().unwrap_or(default_env);
                Secret::new(present(env(key_env)).ok_or_else(|| {
                    ConfigError(format!(
                        "no {name} API key: set the {key_env} environment variable \
                         (or `api_key` under [broker]{file})"
                    ))
                })?)
            }
        };
        let token_file = b.access_token_file.as_deref().map(|p| self.relative(p));
        let access_token = match (&token_file, d.token_env) {
            (Some(p), _) => Secret::new(read_token_file(p)?),
            (None, None) => Secret::default(),
            (None, Some(default_env)) => {
                let tok_env = b.access_token_env.as_deref().unwrap_or(default_env);
                Secret::new(present(env(tok_env)).ok_or_else(|| {
                    ConfigError(format!(
                        "no {name} access token: set the {tok_env} environment variable \
                         or `access_token_file` under [broker]{file} ({})",
                        d.token_hint
                    ))
                })?)
            }
        };
        let client_code = match (
            b.client_code.clone().filter(|c| !c.is_empty()),
            d.client_code_env,
        ) {
            (Some(c), _) => c,
            (None, None) => String::new(),
            (None, Some(default_env)) => {
                let e = b.client_code_env.as_deref().unwrap_or(default_env);
                present(env(e)).ok_or_else(|| {
                    ConfigError(format!(
                        "no {name} user id: set `client_code` under [broker]{file} \
                         (or the {e} environment variable)"
                    ))
                })?
            }
        };
        let feed_token_file = b.feed_token_file.as_deref().map(|p| self.relative(p));
        let feed_token = match (&feed_token_file, d.feed_token_env) {
            (Some(p), _) => Secret::new(read_token_file(p)?),
            (None, None) => Secret::default(),
            (None, Some(default_env)) => {
                let e = b.feed_token_env.as_deref().unwrap_or(default_env);
                Secret::new(present(env(e)).ok_or_else(|| {
                    ConfigError(format!(
                        "no {name} feed token: set the {e} environment variable \
                         or `feed_token_file` under [broker]{file}"
                    ))
                })?)
            }
        };
        let endpoints = Endpoints {
            ws_url: b.ws_url.unwrap_or_else(|| d.ws.into()),
            rest_url: b.rest_url.unwrap_or_else(|| d.rest.into()),
            instruments_url: b
                .instruments_url
                .or_else(|| d.instruments.map(String::from)),
        };
        let adapter = b.kind.adapter();
        let engine = self.engine_config(endpoints, &*adapter);
        Ok(FeedSetup {
            adapter,
            creds: Credentials {
                api_key,
                access_token,
                client_code,
                feed_token,
            },
            engine,
            token_file,
            feed_token_file,
        })
    }

    /// Engine settings for these endpoints, from `[engine]`, `[broker] account` and the
    /// adapter's defaults (idle policy).
    pub fn engine_config(&self, endpoints: Endpoints, adapter: &dyn Adapter) -> EngineConfig {
        let e = &self.engine;
        let mut c = EngineConfig::new(endpoints);
        c.account = self
            .broker
            .as_ref()
            .map(|b| b.account.clone())
            .unwrap_or_default();
        c.stale_after = e.stale_after;
        c.transport_timeout = e.transport_timeout;
        c.connect_timeout = e.connect_timeout;
        c.quality_window = e.quality_window;
        c.validate_token = e.validate_token;
        c.idle_policy = e.idle_policy.unwrap_or_else(|| adapter.idle_policy());
        c.stream_capacity = e.stream_capacity;
        c.backoff = e.backoff;
        c
    }
}

/// Read a token file: its trimmed content; missing or empty is an error naming the file.
pub fn read_token_file(p: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        ConfigError(format!(
            "cannot read access token file {}: {e} (write today's access token into it)",
            p.display()
        ))
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(ConfigError(format!(
            "access token file {} is empty (write today's access token into it)",
            p.display()
        )));
    }
    Ok(t.to_string())
}

/// How often the token file is re-read.
pub const TOKEN_POLL: Duration = Duration::from_secs(2);

/// Watch the token file (and Angel's feed token file) and hand each change to the engine,
/// so `token_invalid` resumes without a restart. Ends when the engine stops.
pub fn spawn_token_watcher(
    setup: &FeedSetup,
    engine: EngineHandle,
) -> Option<tokio::task::JoinHandle<()>> {
    spawn_token_watcher_every(setup, engine, TOKEN_POLL)
}

/// [`spawn_token_watcher`] with a custom poll interval (tests). `None` when no file is used.
pub fn spawn_token_watcher_every(
    setup: &FeedSetup,
    engine: EngineHandle,
    every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if setup.token_file.is_none() && setup.feed_token_file.is_none() {
        return None;
    }
    let (tok_path, feed_path) = (setup.token_file.clone(), setup.feed_token_file.clone());
    let base = setup.creds.clone();
    Some(tokio::spawn(async move {
        let read = |p: &Option<PathBuf>| p.as_deref().map(read_token_file);
        // What is in use at start is whatever the files hold now; only changes are sent.
        let mut last = (
            read(&tok_path).and_then(Result::ok),
            read(&feed_path).and_then(Result::ok),
        );
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Reading a few bytes is cheaper than reasoning about mtime granularity. A file
            // being rewritten (missing, empty) keeps the last good value.
            let now = (
                read(&tok_path).and_then(Result::ok).or(last.0.clone()),
                read(&feed_path).and_then(Result::ok).or(last.1.clone()),
            );
            if now == last {
                continue;
            }
            tracing::info!("token file changed; applying the new token");
            let mut creds = base.clone();
            if let Some(t) = &now.0 {
                creds.access_token = Secret::new(t.clone());
            }
            if let Some(t) = &now.1 {
                creds.feed_token = Secret::new(t.clone());
            }
            if engine.set_credentials(creds).await.is_err() {
                return;
            }
            last = now;
        }
    }))
}
