//! Conformance: the official `kiteconnect` Python client (brokers.md §1.8) against the
//! simulator run as `tickmux sim`. It must receive and parse ticks (quote and full), use the
//! REST endpoints, and recover after the simulator resets the connection.
//!
//! Needs Python with kiteconnect 5.2.2: `.ci/run` installs it into `.venv-ci`; set
//! `TICKMUX_PYTHON` to use another interpreter.

mod conformance_common;

use conformance_common::python;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn official_kiteconnect_client_receives_ticks_and_recovers_after_a_drop() {
    let py = python();
    let probe = Command::new(&py)
        .args([
            "-c",
            "import kiteconnect, sys; print(kiteconnect.__version__)",
        ])
        .output()
        .expect("python runs");
    assert!(
        probe.status.success(),
        "kiteconnect is not installed for {py}: run .ci/run (it installs tests/conformance/requirements.txt into .venv-ci) or set TICKMUX_PYTHON; stderr: {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let mut sim = Command::new(env!("CARGO_BIN_EXE_tickmux"))
        .args(["sim", "--tick-rate", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tickmux sim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("sim prints a JSON line");
    let s = |k: &str| v[k].as_str().unwrap().to_string();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/kite_ticker.py"
    );
    let mut child = Command::new(&py)
        .arg(script)
        .args([
            s("ws_url"),
            s("rest_url"),
            s("control_url"),
            s("api_key"),
            s("access_token"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the python client");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            break None;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.is_some(), "python client hung; stderr: {stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("bad output ({e}): {stdout}\nstderr: {stderr}"));
    assert_eq!(r["completed"], true, "{r:#}\nstderr: {stderr}");
    assert_eq!(r["profile_user_id"], "SIM001");
    assert!(r["ltp"].as_f64().unwrap() > 0.0);
    assert_eq!(r["bad_token_error"], "TokenException");
    assert!(r["connects"].as_u64().unwrap() >= 2, "reconnected: {r:#}");
    assert!(r["ticks_before"].as_u64().unwrap() >= 50);
    assert!(r["ticks_after"].as_u64().unwrap() >= 50);
    let full = &r["samples"]["408065_full"];
    assert_eq!(full["has_depth"], true, "{r:#}");
    assert_eq!(full["tradable"], true);
    let idx = &r["samples"]["256265_quote"];
    assert_eq!(idx["tradable"], false, "index parsed as index: {r:#}");
    assert_eq!(idx["has_ohlc"], true);
}
