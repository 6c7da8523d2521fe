//! `tickmux serve` and `tickmux key`, the real binary: the key file (created once, 0600,
//! rotated on request), the proxy answering a client, `--json` health lines, SIGTERM ending
//! it cleanly with status 0, and a busy port failing with a message that names it.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(30);

fn tickmux(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tickmux"));
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn key(home: &Path, args: &[&str]) -> String {
    let out = timeout(LIMIT, tickmux(home).arg("key").args(args).output())
        .await
        .expect("tickmux key finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Start `tickmux serve` and read the proxy URL from its first stderr line.
async fn serve(home: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = tickmux(home)
        .arg("serve")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = timeout(LIMIT, err.next_line())
        .await
        .expect("a start line")
        .unwrap()
        .expect("stderr open");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn key_is_created_once_with_0600_and_rotates() {
    let home = tempfile::tempdir().unwrap();
    let k1 = key(home.path(), &[]).await;
    assert_eq!(k1.len(), 64);
    assert_eq!(key(home.path(), &[]).await, k1, "the same key every time");
    let path = key(home.path(), &["--path"]).await;
    assert!(path.ends_with("tickmux/proxy_api_key"), "{path}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let k2 = key(home.path(), &["--rotate"]).await;
    assert_ne!(k2, k1);
    assert_eq!(key(home.path(), &[]).await, k2);
}

#[tokio::test]
async fn serve_answers_a_client_prints_json_health_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let k = key(home.path(), &[]).await;
    let (mut child, url) = serve(home.path(), &["--listen", "127.0.0.1:0", "--json"]).await;
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(
        &timeout(LIMIT, stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["type"], "health");
    assert!(
        first["proxy"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for m in [
        json!({"action": "authenticate", "api_key": k}),
        json!({"action": "subscribe", "symbols": [{"symbol": "INFY", "exchange": "NSE"}], "mode": 2}),
    ] {
        ws.send(Message::Text(m.to_string().into())).await.unwrap();
    }
    timeout(LIMIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.as_str().contains("\"market_data\"")
            {
                return;
            }
        }
        panic!("proxy closed before market data");
    })
    .await
    .expect("market data through tickmux serve");
    // The health lines show the client and its subscription.
    timeout(LIMIT, async {
        loop {
            let l = stdout.next_line().await.unwrap().expect("stdout open");
            let v: Value = serde_json::from_str(&l).unwrap();
            let clients = v["proxy"]["clients"].as_array().unwrap();
            if v["state"] == "live"
                && clients.len() == 1
                && clients[0]["subscriptions"] == 1
                && clients[0]["authenticated"] == true
            {
                return;
            }
        }
    })
    .await
    .expect("a health line with the client");

    // SIGTERM: the client is told (1001) and the process exits 0.
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(ok.success());
    let close = timeout(LIMIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, Some(1001));
    let status = timeout(LIMIT, child.wait()).await.expect("exits").unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn serve_on_a_busy_port_fails_with_a_message() {
    let home = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = timeout(
        LIMIT,
        tickmux(home.path())
            .args(["serve", "--listen", &addr])
            .output(),
    )
    .await
    .expect("serve gives up")
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}
