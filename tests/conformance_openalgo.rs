//! Conformance: the official `openalgo` Python SDK (openalgo.md §5; 1.0.47, the newest that
//! installs on this machine's Python 3.11) against `tickmux serve` on the embedded simulator.
//! The SDK must fail to connect with a wrong key, connect with `tickmux key`'s key, and
//! receive and parse LTP, Quote and Depth data through its own callbacks and caches.
//!
//! Needs Python with openalgo: `.ci/run` installs tests/conformance/requirements.txt into
//! `.venv-ci`; set `TICKMUX_PYTHON` to use another interpreter.

mod conformance_common;

use conformance_common::python;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tickmux(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tickmux"));
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"));
    c
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn official_openalgo_sdk_receives_ltp_quote_and_depth_through_the_proxy() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import openalgo, websocket; print('ok')"])
        .output()
        .expect("python runs");
    assert!(
        probe.status.success(),
        "openalgo is not installed for {py}: run .ci/run (it installs tests/conformance/requirements.txt into .venv-ci) or set TICKMUX_PYTHON; stderr: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let home = tempfile::tempdir().unwrap();
    let key = tickmux(home.path()).arg("key").output().unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 64, "a 32-byte hex key");

    let mut serve = Kill(
        tickmux(home.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tickmux serve"),
    );
    let mut err = BufReader::new(serve.0.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no ws:// URL in {line:?}"))
        .to_string();
    // Keep draining stderr so serve never blocks on it.
    std::thread::spawn(move || for _ in err.lines() {});

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/openalgo_client.py"
    );
    let mut child = Command::new(&py)
        .arg(script)
        .args([&url, &key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the python client");
    let start = Instant::now();
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            break false;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(finished, "python client hung; stderr: {stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("bad output ({e}): {stdout}\nstderr: {stderr}"));

    assert_eq!(
        r["bad_key_connect"], false,
        "a wrong key must not authenticate: {r:#}"
    );
    assert_eq!(r["connect"], true, "{r:#}\nstderr: {stderr}");
    for k in [
        "subscribe_ltp",
        "subscribe_quote",
        "subscribe_depth",
        "unsubscribe_ltp",
    ] {
        assert_eq!(r[k], true, "{k}: {r:#}");
    }
    let c = &r["counts"];
    assert!(c["quote"].as_u64().unwrap() >= 5, "{r:#}");
    assert!(c["depth"].as_u64().unwrap() >= 5, "{r:#}");
    assert_eq!(
        r["ltp_symbols"],
        serde_json::json!(["NSE:INFY", "NSE_INDEX:NIFTY"]),
        "LTP for an equity and an OpenAlgo-named index: {r:#}"
    );
    // The SDK's callbacks got parsed values.
    assert!(
        r["ltp_sample"]["data"]["ltp"].as_f64().unwrap() > 0.0,
        "{r:#}"
    );
    let q = &r["quote_sample"]["data"];
    assert_eq!(r["quote_sample"]["symbol"], "RELIANCE");
    for f in ["open", "high", "low", "close", "ltp", "avg_trade_price"] {
        assert!(q[f].as_f64().unwrap() > 0.0, "quote {f}: {r:#}");
    }
    assert!(q["volume"].as_u64().unwrap() > 0, "{r:#}");
    assert!(q["last_trade_quantity"].as_u64().is_some(), "{r:#}");
    let d = &r["depth_sample"]["data"]["depth"];
    assert_eq!(d["buy"].as_array().unwrap().len(), 5, "{r:#}");
    assert_eq!(d["sell"].as_array().unwrap().len(), 5, "{r:#}");
    assert!(d["buy"][0]["price"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(d["sell"][0]["quantity"].as_u64().unwrap() > 0, "{r:#}");
    // ... and its caches.
    assert!(
        r["cache_ltp"]["ltp"]["NSE"]["INFY"]["ltp"]
            .as_f64()
            .is_some_and(|x| x > 0.0),
        "{r:#}"
    );
    assert!(r["cache_quote"].to_string().contains("RELIANCE"), "{r:#}");
    assert!(r["cache_depth"].to_string().contains("TCS"), "{r:#}");
}
