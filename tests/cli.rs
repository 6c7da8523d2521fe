//! The real binary, end to end: argument errors, `stream` on the embedded simulator, unknown
//! symbols, closed stdout, `sim` as a child process scripted with `sim fault|state|clear`,
//! broken config files and the demo. Every child has a deadline and is killed on drop.

use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

/// The binary with HOME and XDG dirs inside `home`, so nothing touches the real home.
fn tickmux(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tickmux"));
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("RUST_LOG")
        .env_remove("KITE_API_KEY")
        .env_remove("KITE_ACCESS_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run(home: &Path, args: &[&str]) -> Output {
    let child = tickmux(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("tickmux {args:?} did not finish within {LIMIT:?}"))
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn stream_argument_errors_exit_non_zero_with_a_message() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["stream"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("SYMBOL"),
        "{}",
        text(&out.stderr)
    );

    let out = run(home.path(), &["stream", "NSE:INFY", "--mode", "deep"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--mode") && err.contains("deep"), "{err}");

    let out = run(home.path(), &["stream", "INFY"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("EXCHANGE:SYMBOL"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn stream_on_the_embedded_simulator() {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "stream",
        "NSE:INFY",
        "NSE:NIFTY 50",
        "--mode",
        "quote",
        "--count",
        "20",
    ];
    let out = run(home.path(), &args).await;
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("no broker configured; streaming from the built-in simulator"),
        "{err}"
    );
    let all = lines(&out);
    let ticks: Vec<&Value> = all.iter().filter(|v| v["type"] == "tick").collect();
    assert_eq!(ticks.len(), 20, "exactly --count ticks");
    for t in &ticks {
        let sym = t["symbol"].as_str().unwrap();
        assert!(sym == "NSE:INFY" || sym == "NSE:NIFTY 50", "{t}");
        assert_eq!(t["exchange"], "NSE");
        assert_eq!(t["mode"], "quote");
        assert!(t["ltp"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["token"].is_u64() && t["recv_ts"].is_i64(), "{t}");
        assert!(t["ohlc"]["close"].is_f64() && t["volume"].is_u64(), "{t}");
        assert!(t.get("depth").is_none(), "no depth in quote mode: {t}");
    }
    let health: Vec<&Value> = all.iter().filter(|v| v["type"] == "health").collect();
    assert!(!health.is_empty(), "at least one health line");
    assert!(
        health
            .iter()
            .all(|h| h["state"].is_string() && h.get("quality").is_some())
    );
    // Logs went to the data dir, never to the terminal.
    assert!(home.path().join("data/tickmux/logs").is_dir());
}

#[tokio::test]
async fn depth_mode_carries_depth() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &["stream", "NSE:INFY", "--mode", "depth", "--count", "3"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ticks: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "tick")
        .collect();
    assert_eq!(ticks.len(), 3);
    assert!(
        ticks
            .iter()
            .any(|t| t["depth"]["buy"].as_array().is_some_and(|b| b.len() == 5))
    );
}

#[tokio::test]
async fn unknown_symbols_are_reported_and_valid_ones_still_stream() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &["stream", "NSE:NOSUCHCO", "NSE:INFY", "--count", "5"],
    )
    .await;
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("NSE:NOSUCHCO"), "{err}");
    let ticks: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["type"] == "tick")
        .collect();
    assert_eq!(ticks.len(), 5);
    assert!(ticks.iter().all(|t| t["symbol"] == "NSE:INFY"));

    let out = run(home.path(), &["stream", "NSE:NOSUCHCO", "BSE:NOPE"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("NSE:NOSUCHCO") && err.contains("BSE:NOPE"),
        "{err}"
    );
}

#[tokio::test]
async fn stream_stops_after_seconds_and_on_a_closed_stdout() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["stream", "NSE:INFY", "--seconds", "1"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(lines(&out).iter().any(|v| v["type"] == "tick"));

    // `| head -3`: read a few lines, close the pipe; the child exits 0 quietly.
    let mut child = tickmux(home.path())
        .args(["stream", "NSE:INFY", "NSE:TCS"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rd = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        timeout(LIMIT, rd.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    drop(rd);
    let out = timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{:?} {err}", out.status);
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
}

/// Start `tickmux sim` and read its handshake line.
async fn spawn_sim(home: &Path) -> (Child, Value) {
    let mut child = tickmux(home)
        .args(["sim", "--seed", "7", "--tick-rate", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rd = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = timeout(LIMIT, rd.next_line())
        .await
        .expect("handshake line in time")
        .unwrap()
        .expect("a first line");
    let v: Value = serde_json::from_str(&first).expect("first line is JSON");
    (child, v)
}

#[tokio::test]
async fn sim_child_is_scriptable_and_streamable() {
    let home = tempfile::tempdir().unwrap();
    let (mut sim, hello) = spawn_sim(home.path()).await;
    for k in [
        "ws_url",
        "rest_url",
        "control_url",
        "api_key",
        "access_token",
    ] {
        assert!(hello[k].is_string(), "{k} in {hello}");
    }
    assert!(
        hello["ws_url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    let control = hello["control_url"].as_str().unwrap().to_string();

    // A config that points `stream` at this external simulator.
    let cfg = home.path().join("ext.toml");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nkind = \"sim\"\nws_url = \"{}\"\nrest_url = \"{}\"\n",
            hello["ws_url"].as_str().unwrap(),
            hello["rest_url"].as_str().unwrap()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let out = run(
        home.path(),
        &["--config", cfg_s, "stream", "NSE:RELIANCE", "--count", "3"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        lines(&out).iter().filter(|v| v["type"] == "tick").count(),
        3
    );

    // A running stream reports the reconnect a fault causes, then stops cleanly on SIGTERM.
    let mut stream = tickmux(home.path())
        .args(["--config", cfg_s, "stream", "NSE:INFY"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rd = BufReader::new(stream.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let l = timeout(LIMIT, rd.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(&l).unwrap()
    };
    while next().await["type"] != "tick" {}
    let out = run(
        home.path(),
        &[
            "sim",
            "fault",
            "close",
            "--code",
            "1001",
            "--control",
            &control,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut health_lines = 0;
    loop {
        let v = next().await;
        if v["type"] == "health" {
            health_lines += 1;
            if v["reconnects"].as_u64() >= Some(1) && v["state"] == "live" {
                break;
            }
        }
    }
    assert!(health_lines >= 2, "a change per state, not one per tick");
    stop(&mut stream).await; // while stdout is still open: the SIGTERM path, not EPIPE
    drop(rd);

    let out = run(
        home.path(),
        &[
            "sim",
            "fault",
            "blackhole",
            "--seconds",
            "1",
            "--control",
            &control,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(home.path(), &["sim", "state", "--control", &control]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: Value = serde_json::from_slice(&out.stdout).expect("state is JSON");
    let faults = state["faults"].as_array().expect("faults list");
    assert!(faults.iter().any(|f| f["fault"] == "blackhole"), "{state}");
    assert!(
        state["upgrades"].as_u64().unwrap() >= 1,
        "the stream connected: {state}"
    );

    // Flags that do not fit the fault are refused, not ignored.
    let out = run(
        home.path(),
        &["sim", "fault", "quiet", "--control", &control],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--tokens"));
    let out = run(
        home.path(),
        &[
            "sim",
            "fault",
            "quiet",
            "--tokens",
            "408065,738561",
            "--control",
            &control,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(home.path(), &["sim", "clear", "--control", &control]).await;
    assert!(out.status.success());
    let out = run(home.path(), &["sim", "state", "--control", &control]).await;
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["faults"].as_array().map(Vec::len), Some(0), "{state}");

    stop(&mut sim).await;
}

/// SIGTERM (clean shutdown path) where available, then make sure the child is gone.
async fn stop(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if let Ok(Ok(status)) = timeout(Duration::from_secs(10), child.wait()).await {
            assert!(status.success(), "sim exits 0 on SIGTERM: {status:?}");
            return;
        }
    }
    let _ = child.kill().await;
}

#[tokio::test]
async fn sim_control_errors_are_reported() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &["sim", "state", "--control", "http://127.0.0.1:1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        home.path(),
        &["sim", "fault", "earthquake", "--control", "http://x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn broken_config_names_file_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("broken.toml");
    std::fs::write(&cfg, "[engine]\nstale_after = \"ten\"\n").unwrap();
    let out = run(
        home.path(),
        &["--config", cfg.to_str().unwrap(), "stream", "NSE:INFY"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(cfg.to_str().unwrap()), "{err}");
    assert!(
        err.contains("line 2") && err.contains("engine.stale_after"),
        "{err}"
    );

    std::fs::write(&cfg, "[engine]\nstale_afterr = 3\n").unwrap();
    let out = run(
        home.path(),
        &["stream", "--config", cfg.to_str().unwrap(), "NSE:INFY"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("engine.stale_afterr"),
        "{}",
        text(&out.stderr)
    );

    let missing = home.path().join("missing.toml");
    let out = run(
        home.path(),
        &["--config", missing.to_str().unwrap(), "stream", "NSE:INFY"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.toml"));

    // A kite broker without credentials: a clear error naming the variables.
    std::fs::write(&cfg, "[broker]\nkind = \"kite\"\n").unwrap();
    let out = run(
        home.path(),
        &["--config", cfg.to_str().unwrap(), "stream", "NSE:INFY"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("KITE_API_KEY"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn demo_prints_the_watchlist_and_stops_after_seconds() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["--seconds", "2.5"]).await;
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("built-in simulator"), "{err}");
    let screen = text(&out.stdout);
    for sym in [
        "NSE:INFY",
        "NSE:RELIANCE",
        "NSE:TCS",
        "NSE:HDFCBANK",
        "NSE:NIFTY 50",
        "NSE:NIFTY BANK",
    ] {
        assert!(screen.contains(sym), "{sym} in\n{screen}");
    }
    // The last screen shows prices, not placeholders, and the engine's events.
    let last = screen.rsplit("tickmux | ").next().unwrap();
    assert!(last.contains("| live |"), "{last}");
    assert!(!last.contains("waiting"), "{last}");
    assert!(last.contains("connected"), "{last}");
}
