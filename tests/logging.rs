//! Secrets never reach the log file: not from our own events (messages, fields, URLs) and not
//! from the engine's errors when a connection fails.

use std::path::Path;
use std::time::Duration;
use tickmux::adapters::kite::Kite;
use tickmux::adapters::{Credentials, Endpoints, ErrorKind};
use tickmux::engine::{self, EngineConfig};
use tickmux::logging;
use tickmux::model::{FeedKey, Instrument, Mode};
use tickmux::secret::Secret;
use tracing_subscriber::EnvFilter;

fn read_logs(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    all
}

// Each test installs its subscriber for its own (current-thread) runtime only, so tests in
// this file do not share a global logger.

#[tokio::test]
async fn tokens_and_keys_never_reach_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = "tok_9f8e7d6c5b4a3210";
    let key = "key_0a1b2c3d4e5f";
    let creds = Credentials {
        api_key: Secret::new(key),
        access_token: Secret::new(token),
        ..Default::default()
    };
    let (sub, guard) = logging::subscriber(EnvFilter::new("trace"), dir.path()).unwrap();
    {
        let _scope = tracing::subscriber::set_default(sub);
        tracing::info!("login with token {token} and key {key}");
        tracing::warn!(access_token = token, api_key = %key, "field values");
        tracing::error!(
            url = "wss://ws.kite.trade/?api_key=unregistered_k&access_token=unregistered_t",
            "connect failed for wss://ws.kite.trade/?api_key=unregistered_k&access_token=unregistered_t"
        );
        tracing::info!(creds = ?creds, "debug of credentials");
        tracing::info!("marker line");
    }
    drop(guard); // flushes the non-blocking writer
    let text = read_logs(dir.path());
    assert!(text.contains("marker line"), "log written: {text}");
    for secret in [token, key, "unregistered_k", "unregistered_t"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
    assert!(text.contains("***"), "{text}");
    assert!(text.contains("access_token=***"), "{text}");
}

#[tokio::test]
async fn engine_connect_errors_do_not_leak_the_token() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let token = "closedport_token_5566778899";
    let key = "closedport_key_11223344";
    let mut cfg = EngineConfig::new(Endpoints {
        ws_url: format!("ws://127.0.0.1:{port}"),
        rest_url: format!("http://127.0.0.1:{port}"),
        instruments_url: None,
    });
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.validate_token = true;
    let (sub, guard) = logging::subscriber(EnvFilter::new("debug"), dir.path()).unwrap();
    let last_error = {
        let _scope = tracing::subscriber::set_default(sub);
        let eng = engine::spawn(
            std::sync::Arc::new(Kite),
            Credentials {
                api_key: Secret::new(key),
                access_token: Secret::new(token),
                ..Default::default()
            },
            cfg,
            true,
        );
        let c = eng.stream().await.unwrap();
        let inst = Instrument {
            exchange: "NSE".into(),
            symbol: "INFY".into(),
            key: FeedKey::kite(408065),
        };
        c.subscribe(vec![std::sync::Arc::new(inst)], Mode::Ltp)
            .await
            .unwrap();
        let mut h = eng.health();
        let err = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                if let Some(e) = h.borrow_and_update().last_error.clone() {
                    return e;
                }
                h.changed().await.unwrap();
            }
        })
        .await
        .expect("a connect failure within 15 s");
        drop(c);
        eng.shutdown().await;
        err
    };
    drop(guard);
    assert!(
        matches!(last_error.kind, ErrorKind::Connect | ErrorKind::Timeout),
        "{last_error:?}"
    );
    assert!(!last_error.text.contains(token), "{}", last_error.text);
    assert!(!last_error.text.contains(key), "{}", last_error.text);
    let text = read_logs(dir.path());
    assert!(!text.is_empty(), "the engine logged its attempts");
    assert!(!text.contains(token), "token leaked into the log:\n{text}");
    assert!(!text.contains(key), "api key leaked into the log:\n{text}");
}
