//! Configuration file, command-line overrides and secrets.
//!
//! `config.toml` lives in the platform config dir (or `--config PATH`); every section and key
//! is optional and unknown keys are errors, so typos never pass silently. Access tokens are
//! never read from the file: they rotate daily, so they come from an environment variable or
//! a token file that [`spawn_token_watcher`] re-reads while running.

mod broker;

pub use broker::{
    BrokerConfig, BrokerKind, DEFAULT_ACCESS_TOKEN_ENV, DEFAULT_API_KEY_ENV, FeedSetup,
    KITE_REST_URL, KITE_WS_URL, TOKEN_POLL, read_token_file, sim_endpoints, spawn_token_watcher,
    spawn_token_watcher_every,
};

use crate::adapters::Endpoints;
use crate::engine::backoff::BackoffConfig;
use crate::engine::{EngineConfig, IdlePolicy};
use crate::sim::SimConfig;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// What to do when the last consumer leaves; absent = the broker's (Noren keeps the
    /// session, everyone else disconnects).
    pub idle_policy: Option<IdlePolicy>,
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
            idle_policy: None,
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
    /// Whose protocol the embedded simulator's feed uses: kite, angel, shoonya or flattrade
    /// (the simulator serves all of them at once).
    #[serde(deserialize_with = "de_sim_broker")]
    pub broker: BrokerKind,
}

fn de_sim_broker<'de, D: Deserializer<'de>>(d: D) -> Result<BrokerKind, D::Error> {
    match BrokerKind::deserialize(d)? {
        k
        @ (BrokerKind::Kite | BrokerKind::Angel | BrokerKind::Shoonya | BrokerKind::Flattrade) => {
            Ok(k)
        }
        other => Err(serde::de::Error::custom(format!(
            "the simulator speaks kite, angel, shoonya or flattrade, not {}",
            other.as_str()
        ))),
    }
}

impl Default for SimSection {
    fn default() -> Self {
        let d = SimConfig::default();
        SimSection {
            seed: d.seed,
            tick_rate: d.tick_rate,
            ws_port: d.ws_port,
            http_port: d.http_port,
            broker: BrokerKind::Kite,
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

/// The platform cache dir (instrument masters).
pub fn cache_dir() -> Option<PathBuf> {
    project_dirs().map(|p| p.cache_dir().to_path_buf())
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

    pub(crate) fn relative(&self, p: &Path) -> PathBuf {
        match self.source.as_deref().and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
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
