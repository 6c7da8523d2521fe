//! What the process benchmarks share: `tickmux sim` as a child process (so its CPU is not
//! counted) and this process's CPU time and RSS from /proc.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use tickmux::adapters::Credentials;
use tickmux::secret::Secret;

/// A running `tickmux sim`; killed on drop.
pub struct SimProc {
    child: Child,
    /// WebSocket root (Kite).
    pub ws_url: String,
    /// REST + control root.
    pub rest_url: String,
    /// Control root.
    pub control_url: String,
    /// Its credentials.
    pub creds: Credentials,
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `tickmux sim` at `tick_rate` ticks/s (seed 1) and read its URLs.
pub fn start_sim(tick_rate: u32) -> SimProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickmux"))
        .args(["sim", "--tick-rate", &tick_rate.to_string(), "--seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tickmux sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("sim prints its URLs");
    let v: serde_json::Value = serde_json::from_str(&line).expect("sim JSON line");
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    SimProc {
        ws_url: s("ws_url"),
        rest_url: s("rest_url"),
        control_url: s("control_url"),
        creds: Credentials {
            api_key: Secret::new(s("api_key")),
            access_token: Secret::new(s("access_token")),
            client_code: s("client_code"),
            feed_token: Secret::new(s("feed_token")),
        },
        child,
    }
}

/// CPU seconds (user + system) of this process.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tck = 100.0; // USER_HZ on Linux
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + s) / tck
}

/// Resident set size of this process, MB.
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}
