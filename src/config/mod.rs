//! Configuration file, command-line overrides and secrets.
//!
//! `config.toml` lives in the platform config dir (or `--config PATH`); every section and key
//! is optional and unknown keys are errors, so typos never pass silently. Access tokens are
//! never read from the file: they rotate daily, so they come from an environment variable or
//! a token file that [`spawn_token_watcher`] re-reads while running.

use crate::adapters::kite::Kite;
use crate::adapters::{Adapter, Credentials, Endpoints};
use crate::engine::backoff::BackoffConfig;
use crate::engine::{EngineConfig, EngineHandle, IdlePolicy};
use crate::secret::Secret;
use crate::sim::SimConfig;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Serde helper: durations as (fractional) seconds.
pub mod secs_f64 {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserialize seconds (integer or float) into a Duration; negative or NaN is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v)
            .map_err(|_| serde::de::Error::custom(format!("{v} is not a valid number of seconds")))
    }
}

/// Serde helper: an optional duration in (fractional) seconds.
pub mod opt_secs_f64 {
    use serde::Deserializer;
    use std::time::Duration;

    /// Deserialize seconds into `Some(Duration)`; absent keys use the field default (`None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::secs_f64::deserialize(d).map(Some)
    }
}

/// A configuration problem, already phrased for the user (file, line, key, fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Which upstream feeds the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// Zerodha Kite Connect.
    #[default]
    Kite,
    /// The built-in simulator (or a `tickmux sim` process when both URLs are given).
    Sim,
}

/// `[broker]`: the upstream account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker adapter; a `[broker]` section without `kind` means Kite.
    pub kind: BrokerKind,
    /// Label shown until the token check names the user.
    pub account: String,
    /// WebSocket root (Kite default `wss://ws.kite.trade`).
    pub ws_url: Option<String>,
    /// REST root (Kite default `https://api.kite.trade`).
    pub rest_url: Option<String>,
    /// API key; allowed in the file (it identifies the app, it does not grant access).
    #[serde(deserialize_with = "de_secret")]
    pub api_key: Option<Secret>,
    /// Environment variable holding the API key when `api_key` is not set.
    pub api_key_env: Option<String>,
    /// Environment variable holding the access token.
    pub access_token_env: Option<String>,
    /// File holding the access token (trimmed); wins over the environment and is watched.
    pub access_token_file: Option<PathBuf>,
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
         set the KITE_ACCESS_TOKEN environment variable or `access_token_file`",
    ))
}

/// `[engine]`: timers and policies of the feed engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Data watchdog, seconds.
    #[serde(with = "secs_f64")]
    pub stale_after: Duration,
    /// Transport watchdog, seconds; absent = the adapter's default (Kite 3 s).
    #[serde(deserialize_with = "opt_secs_f64::deserialize")]
    pub transport_timeout: Option<Duration>,
    /// Bound on TCP connect + WebSocket upgrade, seconds.
    #[serde(with = "secs_f64")]
    pub connect_timeout: Duration,
    /// Trailing window of the quality figure, seconds.
    #[serde(with = "secs_f64")]
    pub quality_window: Duration,
    /// Check the token over REST before connecting.
    pub validate_token: bool,
    /// What to do when the last consumer leaves.
    pub idle_policy: IdlePolicy,
    /// Queue bound of each streaming consumer.
    pub stream_capacity: usize,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
}

impl Default for EngineSection {
    fn default() -> Self {
        // One source of truth for defaults: the engine's own.
        let d = EngineConfig::new(Endpoints {
            ws_url: String::new(),
            rest_url: String::new(),
            instruments_url: None,
        });
        EngineSection {
            stale_after: d.stale_after,
            transport_timeout: d.transport_timeout,
            connect_timeout: d.connect_timeout,
            quality_window: d.quality_window,
            validate_token: d.validate_token,
            idle_policy: d.idle_policy,
            stream_capacity: d.stream_capacity,
            backoff: d.backoff,
        }
    }
}

/// `[sim]`: the built-in simulator.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSection {
    /// Random-walk seed.
    pub seed: u64,
    /// Ticks per second per connection.
    pub tick_rate: u32,
    /// WebSocket port (0 = any free port).
    pub ws_port: u16,
    /// REST/control port (0 = any free port).
    pub http_port: u16,
}

impl Default for SimSection {
    fn default() -> Self {
        let d = SimConfig::default();
        SimSection {
            seed: d.seed,
            tick_rate: d.tick_rate,
            ws_port: d.ws_port,
            http_port: d.http_port,
        }
    }
}

/// `[log]`: the log file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Level or filter directive (`info`, `tickmux=debug`); `RUST_LOG` wins when set.
    pub level: String,
    /// Log directory; absent = the platform data dir + `/logs`.
    pub dir: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            dir: None,
        }
    }
}

/// Frame-rate bounds of the TUI (`[tui] fps`, `--fps`).
pub const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=120;

/// `[tui]`: the terminal UI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuiSection {
    /// Frame cap; ticks never cause more redraws than this (`--fps` wins).
    pub fps: u32,
    /// Capture the mouse (off by default so ssh users can select text; `--mouse` enables).
    pub mouse: bool,
}

impl Default for TuiSection {
    fn default() -> Self {
        TuiSection {
            fps: 20,
            mouse: false,
        }
    }
}

/// `[proxy]`: the OpenAlgo-compatible local proxy (`tickmux serve`, and inside the TUI).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// Run the proxy inside the TUI (`tickmux serve` always runs it).
    pub enabled: bool,
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// API key file; default `<data dir>/proxy_api_key`.
    pub key_file: Option<PathBuf>,
    /// `heartbeat` message interval.
    #[serde(with = "secs_f64")]
    pub heartbeat: Duration,
    /// Unauthenticated sockets are closed (4401) after this.
    #[serde(with = "secs_f64")]
    pub auth_grace: Duration,
    /// Per-client queue bound (conflated per instrument when full).
    pub client_queue: usize,
    /// A client that accepts nothing for this long is closed.
    #[serde(with = "secs_f64")]
    pub stall_timeout: Duration,
    /// WebSocket ping interval.
    #[serde(with = "secs_f64")]
    pub ping_interval: Duration,
    /// Close a client silent for ping_interval + this.
    #[serde(with = "secs_f64")]
    pub pong_timeout: Duration,
    /// Largest client message handled (bytes).
    pub max_message: usize,
    /// Client messages per second.
    pub rate: f64,
    /// Burst above `rate`.
    pub burst: u32,
    /// Refused messages in one flood before the client is closed.
    pub flood_close: u32,
    /// Most simultaneous connections.
    pub max_clients: usize,
}

impl Default for ProxySection {
    fn default() -> Self {
        let d = crate::proxy::ProxyConfig::default();
        ProxySection {
            enabled: true,
            listen: d.listen,
            key_file: None,
            heartbeat: d.heartbeat,
            auth_grace: d.auth_grace,
            client_queue: d.client_queue,
            stall_timeout: d.stall_timeout,
            ping_interval: d.ping_interval,
            pong_timeout: d.pong_timeout,
            max_message: d.max_message,
            rate: d.rate,
            burst: d.burst,
            flood_close: d.flood_close,
            max_clients: d.max_clients,
        }
    }
}

impl ProxySection {
    /// The proxy's settings.
    pub fn proxy_config(&self) -> crate::proxy::ProxyConfig {
        crate::proxy::ProxyConfig {
            listen: self.listen,
            heartbeat: self.heartbeat.max(Duration::from_millis(100)),
            auth_grace: self.auth_grace,
            client_queue: self.client_queue.max(1),
            stall_timeout: self.stall_timeout.max(Duration::from_millis(100)),
            ping_interval: self.ping_interval.max(Duration::from_millis(100)),
            pong_timeout: self.pong_timeout,
            max_message: self.max_message.max(256),
            rate: self.rate,
            burst: self.burst.max(1),
            flood_close: self.flood_close.max(1),
            max_clients: self.max_clients.max(1),
            ..Default::default()
        }
    }

    /// The API key file (relative paths start at the config file's directory).
    pub fn key_path(&self, cfg: &Config) -> Option<PathBuf> {
        match &self.key_file {
            Some(p) => Some(cfg.relative(p)),
            None => crate::proxy::apikey::default_path(),
        }
    }
}

/// One or more key chords for an action: `quit = "q"` or `quit = ["q", "ctrl+c"]`.
fn de_keys<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Chords {
        One(String),
        Many(Vec<String>),
    }
    let m = BTreeMap::<String, Chords>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| match v {
            Chords::One(c) => (k, vec![c]),
            Chords::Many(v) => (k, v),
        })
        .collect())
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Upstream account; absent = the built-in simulator.
    pub broker: Option<BrokerConfig>,
    /// Engine timers and policies.
    pub engine: EngineSection,
    /// Simulator settings.
    pub sim: SimSection,
    /// Logging.
    pub log: LogConfig,
    /// Terminal UI.
    pub tui: TuiSection,
    /// The local OpenAlgo-compatible proxy.
    pub proxy: ProxySection,
    /// Key rebinding by action name; checked by the keymap (bad entries are reported in the
    /// TUI, never fatal), so no `deny_unknown_fields` here.
    #[serde(deserialize_with = "de_keys")]
    pub keys: BTreeMap<String, Vec<String>>,
    /// Where the config came from (for messages and relative paths); `None` = defaults.
    #[serde(skip)]
    pub source: Option<PathBuf>,
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
    /// Token file to watch, when the token comes from one.
    pub token_file: Option<PathBuf>,
}

/// Kite's production WebSocket root.
pub const KITE_WS_URL: &str = "wss://ws.kite.trade";
/// Kite's production REST root.
pub const KITE_REST_URL: &str = "https://api.kite.trade";
/// Default environment variable for the API key.
pub const DEFAULT_API_KEY_ENV: &str = "KITE_API_KEY";
/// Default environment variable for the access token.
pub const DEFAULT_ACCESS_TOKEN_ENV: &str = "KITE_ACCESS_TOKEN";

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "tickmux")
}

/// The default config file path (`<config dir>/config.toml`), if the platform has a home.
pub fn default_path() -> Option<PathBuf> {
    project_dirs().map(|p| p.config_dir().join("config.toml"))
}

/// The platform data dir (logs, watchlist, UI state).
pub fn data_dir() -> Option<PathBuf> {
    project_dirs().map(|p| p.data_dir().to_path_buf())
}

impl Config {
    /// Load `explicit` (must exist) or the default file (missing = defaults).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => match default_path() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(e) => Err(ConfigError(format!(
                "cannot read config file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Parse config text; errors name `path`, the line, the column and the key.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError(describe(&e, text, path)))?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cfg.log.level) {
            let at = locate_key(text, "log", "level")
                .map(|(l, c)| format!(", line {l}, column {c}"))
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "config error in {}{at}: key log.level: {e}",
                path.display()
            )));
        }
        if !FPS_RANGE.contains(&cfg.tui.fps) {
            let at = locate_key(text, "tui", "fps")
                .map(|(l, c)| format!(", line {l}, column {c}"))
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "config error in {}{at}: key tui.fps: {} is out of range ({}..={})",
                path.display(),
                cfg.tui.fps,
                FPS_RANGE.start(),
                FPS_RANGE.end()
            )));
        }
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// True when no real broker is configured (or `kind = "sim"`).
    pub fn uses_sim(&self) -> bool {
        self.broker
            .as_ref()
            .is_none_or(|b| b.kind == BrokerKind::Sim)
    }

    /// URLs of an external simulator (`kind = "sim"` with both URLs set), if any.
    pub fn external_sim(&self) -> Option<Endpoints> {
        let b = self.broker.as_ref().filter(|b| b.kind == BrokerKind::Sim)?;
        Some(Endpoints {
            ws_url: b.ws_url.clone()?,
            rest_url: b.rest_url.clone()?,
            instruments_url: None,
        })
    }

    /// The simulator settings from `[sim]`.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.sim.seed,
            tick_rate: self.sim.tick_rate,
            ws_port: self.sim.ws_port,
            http_port: self.sim.http_port,
            ..SimConfig::default()
        }
    }

    /// The log directory: `[log] dir` (relative to the config file) or the data dir's `logs`.
    pub fn log_dir(&self) -> Option<PathBuf> {
        match &self.log.dir {
            Some(d) => Some(self.relative(d)),
            None => data_dir().map(|d| d.join("logs")),
        }
    }

    fn relative(&self, p: &Path) -> PathBuf {
        match self.source.as_deref().and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// Engine settings for these endpoints, from `[engine]` and `[broker] account`.
    pub fn engine_config(&self, endpoints: Endpoints) -> EngineConfig {
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
        c.idle_policy = e.idle_policy;
        c.stream_capacity = e.stream_capacity;
        c.backoff = e.backoff;
        c
    }

    /// Setup for a simulator at these URLs, with its credentials.
    pub fn sim_setup(&self, endpoints: Endpoints, sim: &SimConfig) -> FeedSetup {
        let mut engine = self.engine_config(endpoints);
        if engine.account.is_empty() {
            engine.account = "sim".into();
        }
        FeedSetup {
            adapter: Arc::new(Kite),
            creds: Credentials {
                api_key: Secret::new(sim.api_key.clone()),
                access_token: Secret::new(sim.access_token.clone()),
                ..Default::default()
            },
            engine,
            token_file: None,
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
        let file = self
            .source
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        let key_env = b.api_key_env.as_deref().unwrap_or(DEFAULT_API_KEY_ENV);
        let tok_env = b
            .access_token_env
            .as_deref()
            .unwrap_or(DEFAULT_ACCESS_TOKEN_ENV);
        let present = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let api_key = match b.api_key.clone().filter(|k| !k.is_empty()) {
            Some(k) => k,
            None => Secret::new(present(env(key_env)).ok_or_else(|| {
                ConfigError(format!(
                    "no Kite API key: set the {key_env} environment variable \
                     (or `api_key` under [broker]{file})"
                ))
            })?),
        };
        let token_file = b.access_token_file.as_deref().map(|p| self.relative(p));
        let access_token = match &token_file {
            Some(p) => Secret::new(read_token_file(p)?),
            None => Secret::new(present(env(tok_env)).ok_or_else(|| {
                ConfigError(format!(
                    "no Kite access token: set the {tok_env} environment variable \
                     or `access_token_file` under [broker]{file} (tokens expire daily at 06:00 IST)"
                ))
            })?),
        };
        let endpoints = Endpoints {
            ws_url: b.ws_url.unwrap_or_else(|| KITE_WS_URL.into()),
            rest_url: b.rest_url.unwrap_or_else(|| KITE_REST_URL.into()),
            instruments_url: None,
        };
        Ok(FeedSetup {
            adapter: Arc::new(Kite),
            creds: Credentials {
                api_key,
                access_token,
                ..Default::default()
            },
            engine: self.engine_config(endpoints),
            token_file,
        })
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

/// Watch a token file and hand each new token to the engine, so `token_invalid` resumes
/// without a restart. Ends when the engine stops.
pub fn spawn_token_watcher(
    path: PathBuf,
    engine: EngineHandle,
    api_key: Secret,
) -> tokio::task::JoinHandle<()> {
    spawn_token_watcher_every(path, engine, api_key, TOKEN_POLL)
}

/// [`spawn_token_watcher`] with a custom poll interval (tests).
pub fn spawn_token_watcher_every(
    path: PathBuf,
    engine: EngineHandle,
    api_key: Secret,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The token in use at start is whatever the file holds now; only changes are sent.
        let mut last = read_token_file(&path).ok();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Reading a few bytes is cheaper than reasoning about mtime granularity.
            let Ok(tok) = read_token_file(&path) else {
                continue;
            };
            if last.as_deref() == Some(tok.as_str()) {
                continue;
            }
            tracing::info!(file = %path.display(), "access token file changed; applying the new token");
            let creds = Credentials {
                api_key: api_key.clone(),
                access_token: Secret::new(tok.clone()),
                ..Default::default()
            };
            if engine.set_credentials(creds).await.is_err() {
                return;
            }
            last = Some(tok);
        }
    })
}

/// Line and column (1-based, in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Phrase a toml error as `config error in PATH, line L, column C: key K: MESSAGE`.
fn describe(e: &toml::de::Error, text: &str, path: &Path) -> String {
    let msg = e.message().trim();
    let Some(span) = e.span() else {
        return format!("config error in {}: {msg}", path.display());
    };
    let (line, col) = line_col(text, span.start);
    let key = key_at(text, line)
        .map(|k| format!("key {k}: "))
        .unwrap_or_default();
    format!(
        "config error in {}, line {line}, column {col}: {key}{msg}",
        path.display()
    )
}

/// The dotted key defined on `line` (1-based): the last table header above it plus the
/// key left of `=`. toml keeps its own key path private, so recover it from the text.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line.checked_sub(1)?)?.trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        Some(clean_key(inner.trim_start_matches('[')))
    };
    if let Some(h) = header(this) {
        return Some(h);
    }
    let key = clean_key(this.split_once('=')?.0);
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let section = lines[..line - 1].iter().rev().find_map(|l| header(l));
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key,
    })
}

fn clean_key(k: &str) -> String {
    k.split('.')
        .map(|p| p.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

/// Line/column of `key` inside `[section]`, for errors found after parsing.
fn locate_key(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if key_at(text, i + 1).as_deref() == Some(&format!("{section}.{key}")) {
            let indent = l.len() - l.trim_start().len();
            return Some(line_col(text, offset + indent));
        }
        offset += l.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_from_text() {
        let t = "a = 1\n[engine]\nstale_after = \"x\"\n[engine.backoff]\n  base = 1\n";
        assert_eq!(key_at(t, 1).as_deref(), Some("a"));
        assert_eq!(key_at(t, 3).as_deref(), Some("engine.stale_after"));
        assert_eq!(key_at(t, 5).as_deref(), Some("engine.backoff.base"));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(locate_key(t, "engine.backoff", "base"), Some((5, 3)));
    }

    #[test]
    fn tui_and_keys_sections() {
        let p = Path::new("/c.toml");
        let c = Config::parse("", p).unwrap();
        assert_eq!(c.tui, TuiSection::default());
        assert_eq!(c.tui.fps, 20);
        assert!(c.keys.is_empty());
        let c = Config::parse(
            "[tui]\nfps = 10\nmouse = true\n[keys]\nquit = \"x\"\nsubscribe = [\"a\", \"+\"]\n",
            p,
        )
        .unwrap();
        assert_eq!((c.tui.fps, c.tui.mouse), (10, true));
        assert_eq!(c.keys["quit"], vec!["x"]);
        assert_eq!(c.keys["subscribe"], vec!["a", "+"]);
        let e = Config::parse("[tui]\nfps = 0\n", p).unwrap_err().0;
        assert!(e.contains("tui.fps") && e.contains("line 2"), "{e}");
        let e = Config::parse("[tui]\nfsp = 5\n", p).unwrap_err().0;
        assert!(e.contains("tui.fsp"), "{e}");
        let e = Config::parse("[keys]\nquit = 5\n", p).unwrap_err().0;
        assert!(e.contains("keys.quit"), "{e}");
    }
}
