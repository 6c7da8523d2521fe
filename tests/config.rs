//! Config file: the example documents every key, and broken files produce messages that name
//! the file, line, column and key. Credentials: clear errors, token-file precedence, watcher.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tickmux::config::{self, BrokerKind, Config};
use tickmux::engine::{self, EngineState};
use tickmux::instruments::InstrumentMaster;
use tickmux::model::Mode;
use tickmux::sim::{Sim, SimConfig};

const EXAMPLE: &str = include_str!("../config.example.toml");

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/tickmux/config.toml")).map_err(|e| e.0)
}

/// The example with every `# key = value` and `# [section]` line uncommented.
fn uncommented_example() -> String {
    EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_key_line(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_key_line(s: &str) -> bool {
    if s.starts_with('[') {
        return true;
    }
    let Some((k, _)) = s.split_once('=') else {
        return false;
    };
    let k = k.trim();
    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// The field names serde expects in a table, read from its "unknown field" message, so the
/// list always follows the structs.
fn fields_of(table: &str) -> Vec<String> {
    let probe = if table.is_empty() {
        "__probe = 1\n".to_string()
    } else {
        format!("[{table}]\n__probe = 1\n")
    };
    let err = parse(&probe).expect_err("probe key is unknown");
    let list = err
        .split("expected")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in {err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn example_parses_and_documents_every_key() {
    // As shipped (all commented out) it is valid and means "defaults".
    let plain = parse(EXAMPLE).expect("example parses as shipped");
    assert!(plain.uses_sim());

    let full = uncommented_example();
    let cfg = parse(&full).unwrap_or_else(|e| panic!("uncommented example parses: {e}\n{full}"));
    let b = cfg.broker.as_ref().expect("broker section");
    assert_eq!(b.kind, BrokerKind::Kite);
    assert_eq!(cfg.engine.backoff.max_attempts, 10);

    let doc: toml::Table = toml::from_str(&full).unwrap();
    for table in ["", "broker", "engine", "engine.backoff", "sim", "log"] {
        let mut t = &doc;
        for part in table.split('.').filter(|p| !p.is_empty()) {
            t = t[part]
                .as_table()
                .unwrap_or_else(|| panic!("[{table}] in example"));
        }
        let fields = fields_of(table);
        assert!(fields.len() >= 2, "[{table}] fields: {fields:?}");
        for f in fields {
            // `access_token` exists only to be rejected with an explanation.
            if table == "broker" && f == "access_token" {
                continue;
            }
            assert!(
                t.contains_key(&f),
                "config.example.toml does not document [{table}] {f}"
            );
        }
    }
}

#[test]
fn example_defaults_match_code_defaults() {
    let cfg = parse(&uncommented_example()).unwrap();
    let d = Config::default();
    assert_eq!(cfg.engine.stale_after, d.engine.stale_after);
    assert_eq!(cfg.engine.connect_timeout, d.engine.connect_timeout);
    assert_eq!(cfg.engine.quality_window, d.engine.quality_window);
    assert_eq!(cfg.engine.stream_capacity, d.engine.stream_capacity);
    assert_eq!(cfg.engine.backoff, d.engine.backoff);
    assert_eq!(cfg.sim.seed, d.sim.seed);
    assert_eq!(cfg.sim.tick_rate, d.sim.tick_rate);
    assert_eq!(cfg.log.level, d.log.level);
}

#[test]
fn broken_syntax_names_file_line_and_key() {
    let e = parse("[engine]\nstale_after = 10\nconnect_timeout = = 3\n").unwrap_err();
    assert!(e.contains("/etc/tickmux/config.toml"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("engine.connect_timeout"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = parse("[engine]\nstale_after = 10\nstale_afterr = 3\n").unwrap_err();
    assert!(e.contains("line 3, column 1"), "{e}");
    assert!(e.contains("engine.stale_afterr"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
    let e = parse("[engine.backoff]\nbase = 1\njiter = 0.1\n").unwrap_err();
    assert!(e.contains("engine.backoff.jiter"), "{e}");
    let e = parse("[brokr]\nkind = \"kite\"\n").unwrap_err();
    assert!(e.contains("brokr") && e.contains("line 1"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = "# comment\n\n[log]\nlevel = \"info\"\n\n[engine]\nstale_after = \"ten\"\n";
    let e = parse(text).unwrap_err();
    assert!(
        e.starts_with(
            "config error in /etc/tickmux/config.toml, line 7, column 15: key engine.stale_after:"
        ),
        "{e}"
    );
    assert!(e.contains("invalid type"), "{e}");
    let e = parse("[sim]\ntick_rate = -5\n").unwrap_err();
    assert!(e.contains("sim.tick_rate") && e.contains("line 2"), "{e}");
    let e = parse("[engine]\nstale_after = -1\n").unwrap_err();
    assert!(
        e.contains("engine.stale_after") && e.contains("seconds"),
        "{e}"
    );
    let e = parse("[engine]\nidle_policy = \"sometimes\"\n").unwrap_err();
    assert!(e.contains("engine.idle_policy"), "{e}");
    let e = parse("[log]\nlevel = \"loud=,=\"\n").unwrap_err();
    assert!(e.contains("log.level") && e.contains("line 2"), "{e}");
}

#[test]
fn access_token_in_file_is_rejected_with_the_fix() {
    let e = parse("[broker]\nkind = \"kite\"\naccess_token = \"abcdef123\"\n").unwrap_err();
    assert!(
        e.contains("broker.access_token") && e.contains("line 3"),
        "{e}"
    );
    assert!(
        e.contains("KITE_ACCESS_TOKEN") && e.contains("access_token_file"),
        "{e}"
    );
    assert!(!e.contains("abcdef123"), "{e}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.toml");
    let e = Config::load(Some(&p)).unwrap_err().0;
    assert!(e.contains("nope.toml"), "{e}");
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

#[test]
fn missing_kite_credentials_give_a_clear_error() {
    let cfg = parse("[broker]\nkind = \"kite\"\n").unwrap();
    assert!(!cfg.uses_sim());
    let e = cfg.broker_setup_with(env(&[])).err().unwrap().0;
    assert!(e.contains("KITE_API_KEY"), "{e}");
    let e = cfg
        .broker_setup_with(env(&[("KITE_API_KEY", "key123456")]))
        .err()
        .unwrap()
        .0;
    assert!(
        e.contains("KITE_ACCESS_TOKEN") && e.contains("access_token_file"),
        "{e}"
    );
    assert!(e.contains("/etc/tickmux/config.toml"), "{e}");

    let cfg = parse("[broker]\napi_key_env = \"MY_KEY\"\naccess_token_env = \"MY_TOK\"\n").unwrap();
    let e = cfg.broker_setup_with(env(&[])).err().unwrap().0;
    assert!(e.contains("MY_KEY"), "{e}");
    let s = cfg
        .broker_setup_with(env(&[("MY_KEY", "key123456"), ("MY_TOK", " tok987654 \n")]))
        .unwrap();
    assert_eq!(s.creds.access_token.expose(), "tok987654");
    assert_eq!(s.engine.endpoints.ws_url, config::KITE_WS_URL);
    assert!(s.token_file.is_none());
}

#[test]
fn token_file_takes_precedence_and_is_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.txt"), "  file_token_123  \n").unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(
        &cfg_path,
        "[broker]\napi_key = \"filekey123\"\naccess_token_file = \"token.txt\"\n\
         [engine]\nstale_after = 2.5\n",
    )
    .unwrap();
    let cfg = Config::load(Some(&cfg_path)).unwrap();
    let s = cfg
        .broker_setup_with(env(&[
            ("KITE_API_KEY", "envkey123"),
            ("KITE_ACCESS_TOKEN", "env_token_456"),
        ]))
        .unwrap();
    assert_eq!(s.creds.access_token.expose(), "file_token_123");
    assert_eq!(s.creds.api_key.expose(), "filekey123");
    assert_eq!(
        s.token_file.as_deref(),
        Some(dir.path().join("token.txt").as_path())
    );
    assert_eq!(s.engine.stale_after, Duration::from_millis(2500));
    assert!(!format!("{:?}", cfg.broker).contains("filekey123"));

    // An empty token file is an error naming it, even when the env var is set.
    std::fs::write(dir.path().join("token.txt"), "\n").unwrap();
    let e = cfg
        .broker_setup_with(env(&[
            ("KITE_API_KEY", "k"),
            ("KITE_ACCESS_TOKEN", "env_token_456"),
        ]))
        .err()
        .unwrap()
        .0;
    assert!(e.contains("token.txt") && e.contains("empty"), "{e}");
}

async fn wait_for_state(
    h: &mut tokio::sync::watch::Receiver<tickmux::engine::health::Health>,
    want: EngineState,
) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if h.borrow_and_update().state == want {
                return;
            }
            h.changed().await.expect("engine alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {want:?}; now {:?}", h.borrow().state));
}

#[tokio::test]
async fn token_watcher_resumes_token_invalid_without_restart() {
    let sim_cfg = SimConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = Sim::start(sim_cfg.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "expired_token_1\n").unwrap();
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[broker]\nkind = \"kite\"\nws_url = \"{}\"\nrest_url = \"{}\"\napi_key = \"{}\"\n\
             access_token_file = \"token\"\n[engine]\nconnect_timeout = 2\n",
            sim.ws_url(),
            sim.rest_url(),
            sim_cfg.api_key
        ),
    )
    .unwrap();
    let cfg = Config::load(Some(&cfg_path)).unwrap();
    let setup = cfg.broker_setup_with(env(&[])).unwrap();
    let master = InstrumentMaster::fetch(&*setup.adapter, &setup.engine.endpoints, &setup.creds)
        .await
        .unwrap();
    let eng = engine::spawn(
        setup.adapter.clone(),
        setup.creds.clone(),
        setup.engine.clone(),
        true,
    );
    let watcher = config::spawn_token_watcher_every(&setup, eng.clone(), Duration::from_millis(50))
        .expect("a token file to watch");
    let c = eng.stream().await.unwrap();
    c.subscribe(vec![master.resolve("NSE:INFY").unwrap()], Mode::Ltp)
        .await
        .unwrap();
    let mut h = eng.health();
    wait_for_state(&mut h, EngineState::TokenInvalid).await;
    std::fs::write(&tok, format!("{}\n", sim_cfg.access_token)).unwrap();
    wait_for_state(&mut h, EngineState::Live).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), c.recv())
            .await
            .unwrap()
            .is_some()
    );
    drop(c);
    eng.shutdown().await;
    watcher.abort();
    sim.shutdown().await;
}

#[test]
fn every_broker_kind_names_its_missing_secrets_and_builds_its_setup() {
    // Angel needs four things; each missing one is named with its variable.
    let cfg = parse("[broker]\nkind = \"angel\"\n").unwrap();
    let e = cfg.broker_setup_with(env(&[])).err().unwrap().0;
    assert!(e.contains("ANGEL_API_KEY"), "{e}");
    let e = cfg
        .broker_setup_with(env(&[("ANGEL_API_KEY", "k123456")]))
        .err()
        .unwrap()
        .0;
    assert!(e.contains("ANGEL_JWT"), "{e}");
    let e = cfg
        .broker_setup_with(env(&[
            ("ANGEL_API_KEY", "k123456"),
            ("ANGEL_JWT", "jwt123456"),
        ]))
        .err()
        .unwrap()
        .0;
    assert!(
        e.contains("client_code") && e.contains("ANGEL_CLIENT_CODE"),
        "{e}"
    );
    let s = cfg
        .broker_setup_with(env(&[
            ("ANGEL_API_KEY", "k123456"),
            ("ANGEL_JWT", "jwt123456"),
            ("ANGEL_CLIENT_CODE", "A123"),
            ("ANGEL_FEED_TOKEN", "feed123456"),
        ]))
        .unwrap();
    assert_eq!(s.adapter.name(), "angel");
    assert_eq!(s.creds.client_code, "A123");
    assert_eq!(
        s.engine.endpoints.ws_url,
        "wss://smartapisocket.angelone.in/smart-stream"
    );
    assert!(
        s.engine
            .endpoints
            .instruments_url
            .unwrap()
            .ends_with("OpenAPIScripMaster.json")
    );
    assert_eq!(
        s.engine.idle_policy,
        tickmux::engine::IdlePolicy::Disconnect
    );

    // Noren: no API key, a user id and a token; the session is kept when idle.
    let cfg = parse("[broker]\nkind = \"flattrade\"\nclient_code = \"FT001\"\n").unwrap();
    let e = cfg.broker_setup_with(env(&[])).err().unwrap().0;
    assert!(e.contains("FLATTRADE_TOKEN"), "{e}");
    let s = cfg
        .broker_setup_with(env(&[("FLATTRADE_TOKEN", "tok123456")]))
        .unwrap();
    assert_eq!(s.adapter.name(), "flattrade");
    assert_eq!(
        s.engine.idle_policy,
        tickmux::engine::IdlePolicy::KeepSession
    );
    // ...unless the config says otherwise.
    let cfg = parse(
        "[broker]\nkind = \"shoonya\"\nclient_code = \"FA1\"\n[engine]\nidle_policy = \"disconnect\"\n",
    )
    .unwrap();
    let s = cfg
        .broker_setup_with(env(&[("SHOONYA_SUSERTOKEN", "tok123456")]))
        .unwrap();
    assert_eq!(
        s.engine.idle_policy,
        tickmux::engine::IdlePolicy::Disconnect
    );

    // OpenAlgo: just the key.
    let cfg = parse("[broker]\nkind = \"openalgo\"\nws_url = \"ws://10.0.0.5:8765\"\n").unwrap();
    let e = cfg.broker_setup_with(env(&[])).err().unwrap().0;
    assert!(e.contains("OPENALGO_API_KEY"), "{e}");
    let s = cfg
        .broker_setup_with(env(&[("OPENALGO_API_KEY", "key123456")]))
        .unwrap();
    assert_eq!(s.engine.endpoints.ws_url, "ws://10.0.0.5:8765");
}

#[test]
fn sim_broker_is_one_the_simulator_speaks() {
    let c = parse("[sim]\nbroker = \"angel\"\n").unwrap();
    assert_eq!(c.sim_broker(), BrokerKind::Angel);
    let e = parse("[sim]\nbroker = \"openalgo\"\n").unwrap_err();
    assert!(
        e.contains("sim.broker") && e.contains("kite, angel, shoonya or flattrade"),
        "{e}"
    );
    let e = parse("[broker]\nkind = \"zerodha\"\n").unwrap_err();
    assert!(e.contains("broker.kind"), "{e}");
}
