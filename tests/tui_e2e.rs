//! The TUI end to end: the real binary inside tmux (a private server per test, HOME and XDG
//! dirs in a tempdir, no watchlist file → the starter list on the embedded simulator), driven
//! with send-keys and read with capture-pane. Every wait polls with a deadline; a timeout
//! fails with the screen and the log tail. Also: without a terminal `tickmux` refuses to start.
//!
//! Needs tmux (`.ci/run` installs it). Without it these tests fail, on purpose: a skipped
//! end-to-end test looks exactly like a passing one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// A private tmux server running `tickmux` in one 120x40 pane; killed on drop.
struct Tmux {
    socket: String,
    home: tempfile::TempDir,
}

impl Tmux {
    fn start(args: &[&str]) -> Tmux {
        Tmux::start_in(tempfile::tempdir().unwrap(), args)
    }

    /// Start with extra environment variables.
    fn start_env(env: &[(&str, &str)], args: &[&str]) -> Tmux {
        Tmux::launch(tempfile::tempdir().unwrap(), env, args)
    }

    /// Start with a prepared home (e.g. a watchlist already in its data dir).
    fn start_in(home: tempfile::TempDir, args: &[&str]) -> Tmux {
        Tmux::launch(home, &[], args)
    }

    fn launch(home: tempfile::TempDir, env: &[(&str, &str)], args: &[&str]) -> Tmux {
        require_tmux();
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "tickmux-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        // The proxy on a free port (not 8765), unless the test wrote its own config.
        let cfg_dir = home.path().join("config/tickmux");
        if !cfg_dir.join("config.toml").exists() {
            std::fs::create_dir_all(&cfg_dir).unwrap();
            std::fs::write(
                cfg_dir.join("config.toml"),
                "[proxy]\nlisten = \"127.0.0.1:0\"\n",
            )
            .unwrap();
        }
        let conf = home.path().join("tmux.conf");
        // remain-on-exit keeps the pane (and its exit status) after tickmux ends; no status
        // line, so the pane is the whole 120x40.
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").unwrap();
        let h = home.path();
        // A shell records the exit status in a file: tmux 3.3 sometimes leaves a pane whose
        // child exited right after a signal as a zombie without `pane_dead_status`.
        let mut cmd = vec![
            "sh".to_string(),
            "-c".into(),
            r#""$@"; echo $? > "$0""#.into(),
            h.join("exit-status").display().to_string(),
            "env".to_string(),
            format!("HOME={}", h.display()),
            format!("XDG_CONFIG_HOME={}", h.join("config").display()),
            format!("XDG_DATA_HOME={}", h.join("data").display()),
            "TERM=xterm-256color".into(),
            "RUST_LOG=info".into(),
        ];
        cmd.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.push(env!("CARGO_BIN_EXE_tickmux").into());
        cmd.extend(args.iter().map(|s| s.to_string()));
        let t = Tmux { socket, home };
        let mut full = vec![
            "-f".to_string(),
            conf.display().to_string(),
            "new-session".into(),
            "-d".into(),
            "-x".into(),
            "120".into(),
            "-y".into(),
            "40".into(),
            "-s".into(),
            "e2e".into(),
            "--".into(),
        ];
        full.extend(cmd);
        let out = t.tmux(&full.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            text(&out.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn data_dir(&self) -> PathBuf {
        self.home.path().join("data/tickmux")
    }

    fn screen(&self) -> String {
        text(&self.tmux(&["capture-pane", "-p", "-t", "e2e"]).stdout)
    }

    /// Named keys (`Enter`, `Escape`) or single characters.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// Literal text (no key-name lookup).
    fn type_text(&self, s: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "e2e", "-l", s])
                .status
                .success()
        );
    }

    fn pane(&self, format: &str) -> String {
        text(
            &self
                .tmux(&["display-message", "-p", "-t", "e2e", format])
                .stdout,
        )
        .trim()
        .to_string()
    }

    /// Poll the screen until `ok` holds; on timeout fail with the screen and the log.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > end {
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\n--- screen ---\n{s}\n--- log ---\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Exit status once tickmux has ended (written by the wrapping shell).
    fn wait_exit(&self) -> i32 {
        let path = self.home.path().join("exit-status");
        let end = Instant::now() + WAIT;
        loop {
            if let Ok(code) = std::fs::read_to_string(&path).map(|s| s.trim().parse::<i32>())
                && let Ok(code) = code
            {
                return code;
            }
            if Instant::now() > end {
                panic!(
                    "tickmux did not exit within {WAIT:?}\n--- screen ---\n{}\n--- log ---\n{}",
                    self.screen(),
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The tickmux process: the wrapping shell's only child.
    fn tickmux_pid(&self) -> String {
        let sh = self.pane("#{pane_pid}");
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .unwrap_or_else(|e| panic!("children of the pane's shell {sh}: {e}"));
        let pid = children
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(!pid.is_empty(), "the pane's shell has no child");
        pid
    }

    fn log_tail(&self) -> String {
        let dir = self.data_dir().join("logs");
        let mut all = String::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn watchlist(&self) -> serde_json::Value {
        let p = self.data_dir().join("watchlist.json");
        let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&s).unwrap()
    }

    fn wait_watchlist(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let p = self.data_dir().join("watchlist.json");
        let end = Instant::now() + WAIT;
        while !(p.exists() && ok(&self.watchlist())) {
            assert!(
                Instant::now() < end,
                "watchlist file never showed {what}: {:?}",
                std::fs::read_to_string(&p)
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn require_tmux() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "tmux is required for the TUI end-to-end tests and was not found on PATH \
         (install it: apt-get install -y tmux; .ci/run does this)"
    );
}

/// The value after a health-pane label: "reconnects 2" → 2.
fn health_number(screen: &str, label: &str) -> Option<u64> {
    screen.lines().find_map(|l| {
        let at = l.find(label)?;
        let rest = l[at + label.len()..].trim_start();
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    })
}

/// The screen above the event log (header, tabs, table, health).
fn table_part(s: &str) -> &str {
    s.find("Events (IST)").map_or(s, |at| &s[..at])
}

fn live(s: &str) -> bool {
    s.contains("● LIVE")
}

fn event_count(s: &str, word: &str) -> usize {
    s.lines().filter(|l| l.contains(word)).count()
}

#[test]
fn tui_on_the_simulator_subscribe_unsubscribe_reconnect_fault_quit() {
    let t = Tmux::start(&[]);
    // Header names the simulator; the engine goes live with the starter list.
    let s = t.wait_for("the simulator in the header and state LIVE", |s| {
        s.contains("simulator") && live(s) && s.contains("NSE:RELIANCE")
    });
    for sym in tickmux::cli::demo::STARTER {
        assert!(s.contains(sym), "{sym} in\n{s}");
    }
    assert!(!t.data_dir().join("watchlist.json").exists() || t.watchlist()["items"].is_array());

    // Subscribe: a, type the symbol, Enter.
    t.keys(&["a"]);
    t.wait_for("the subscribe prompt", |s| s.contains("Subscribe"));
    t.type_text("NSE:SBIN");
    t.keys(&["Enter"]);
    t.wait_for("NSE:SBIN in the table", |s| {
        s.contains("NSE:SBIN") && !s.contains("Subscribe")
    });
    t.wait_watchlist("NSE:SBIN", |v| v.to_string().contains("NSE:SBIN"));

    // Unsubscribe all (D, confirm y): empty hint, the upstream connection stays.
    t.keys(&["D"]);
    t.keys(&["y"]);
    let s = t.wait_for("the empty-watchlist hint", |s| {
        s.contains("No instruments yet")
    });
    // Gone from the table (the event log still names it).
    assert!(!table_part(&s).contains("NSE:SBIN"), "{s}");
    t.wait_for("upstream 1 after unsubscribe-all", |s| {
        s.contains("No instruments yet") && health_number(s, "upstream") == Some(1)
    });
    t.wait_watchlist("an empty list", |v| {
        v["items"].as_array().is_some_and(|a| a.is_empty())
    });

    // Something to watch again, then force a reconnect (R, confirm y).
    t.keys(&["a"]);
    t.wait_for("the subscribe prompt", |s| s.contains("Subscribe"));
    t.type_text("NSE:INFY");
    t.keys(&["Enter"]);
    t.wait_for("NSE:INFY live", |s| s.contains("NSE:INFY") && live(s));
    t.keys(&["R"]);
    t.keys(&["y"]);
    t.wait_for("reconnects >= 1 and LIVE again", |s| {
        health_number(s, "reconnects").is_some_and(|n| n >= 1) && live(s)
    });
    let before = health_number(&t.screen(), "reconnects").unwrap();

    // A fault from the menu: TCP reset. The engine notices, reconnects and resubscribes.
    t.keys(&["f"]);
    t.wait_for("the fault menu", |s| s.contains("TCP reset"));
    t.keys(&["2"]);
    let s = t.wait_for(
        "the disconnect and re-subscribe in the event log, LIVE again",
        |s| {
            health_number(s, "reconnects").is_some_and(|n| n > before)
                && event_count(s, "resubscribed") >= 1
                && live(s)
        },
    );
    assert!(
        s.contains("disconnected") || s.contains("reset") || s.contains("closed"),
        "{s}"
    );

    // q quits with status 0; the terminal left the alternate screen.
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0, "log:\n{}", t.log_tail());
    assert_eq!(t.pane("#{alternate_on}"), "0");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal_and_exit_cleanly() {
    for sig in ["TERM", "HUP"] {
        let t = Tmux::start(&["--fps", "10"]);
        t.wait_for("state LIVE", live);
        assert_eq!(t.pane("#{alternate_on}"), "1");
        let pid = t.tickmux_pid();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid])
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(t.wait_exit(), 0, "SIG{sig}; log:\n{}", t.log_tail());
        assert_eq!(t.pane("#{alternate_on}"), "0", "SIG{sig}");
        assert!(
            t.log_tail().contains(&format!("SIG{sig}")),
            "{}",
            t.log_tail()
        );
    }
}

#[test]
fn a_panic_restores_the_terminal_and_is_logged() {
    // The binary under test is a debug build, which has the TICKMUX_DEBUG_PANIC hook.
    for (kind, code) in [("ui", 101), ("task", 1)] {
        let t = Tmux::start_env(
            &[("TICKMUX_DEBUG_PANIC", kind), ("RUST_BACKTRACE", "0")],
            &[],
        );
        let status = t.wait_exit();
        assert_eq!(status, code, "{kind}; log:\n{}", t.log_tail());
        assert_eq!(
            t.pane("#{alternate_on}"),
            "0",
            "{kind}: alternate screen left"
        );
        let log = t.log_tail();
        assert!(
            log.contains(&format!("TICKMUX_DEBUG_PANIC={kind}")),
            "{kind}: the panic is in the log:\n{log}"
        );
        // The message lands on the normal screen, readable.
        let s = t.screen();
        assert!(
            s.contains("TICKMUX_DEBUG_PANIC"),
            "{kind}: the panic on screen:\n{s}"
        );
    }
}

/// A home whose config puts the proxy on `listen`.
fn home_with_proxy(listen: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("config/tickmux");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("[proxy]\nlisten = \"{listen}\"\n"),
    )
    .unwrap();
    home
}

/// The port after "clients    N on :" in the health pane.
fn proxy_port(screen: &str) -> Option<u16> {
    let at = screen.find(" on :")?;
    let digits: String = screen[at + 5..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn the_tuis_proxy_serves_a_client_and_a_busy_port_is_only_a_warning() {
    // Busy port: the TUI runs anyway and says why the proxy is not there.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap().to_string();
    let t = Tmux::start_in(home_with_proxy(&busy), &[]);
    let s = t.wait_for("the busy-port warning, LIVE", |s| {
        live(s) && s.contains("clients    off (port busy)")
    });
    assert!(s.contains("not started"), "event log line:\n{s}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    drop(t);
    drop(held);

    // A free port: a local client authenticates and subscribes; the pane counts it.
    let t = Tmux::start(&[]);
    let s = t.wait_for("the proxy in the health pane", |s| {
        live(s) && s.contains("clients    0 on :")
    });
    let port = proxy_port(&s).expect("port in the pane");
    let key = std::fs::read_to_string(t.data_dir().join("proxy_api_key"))
        .unwrap()
        .trim()
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ws = rt.block_on(async {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}"))
            .await
            .unwrap();
        for m in [
            serde_json::json!({"action": "authenticate", "api_key": key}),
            serde_json::json!({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1}),
        ] {
            ws.send(Message::Text(m.to_string().into())).await.unwrap();
        }
        // Until the first tick arrives through the TUI's engine.
        let wait = tokio::time::timeout(WAIT, async { loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("market_data") => break,
                Some(Ok(_)) => {}
                other => panic!("proxy connection ended: {other:?}"),
            }
        } });
        wait.await.expect("market data through the TUI's proxy");
        ws
    });
    t.wait_for("one client with one subscription", |s| {
        s.contains(&format!("clients    1 on :{port} (subs 1)"))
    });
    rt.block_on(async {
        let _ = ws.close(None).await;
    });
    t.wait_for("the client gone", |s| {
        s.contains(&format!("clients    0 on :{port}"))
    });
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
}

#[test]
fn saved_watchlist_is_restored_and_a_corrupt_one_kept_aside() {
    // A saved list is re-subscribed at start.
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data/tickmux");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("watchlist.json"),
        r#"{"version":1,"items":[{"symbol":"NSE:SBIN","mode":"ltp"}]}"#,
    )
    .unwrap();
    let t = Tmux::start_in(home, &[]);
    let s = t.wait_for("the saved NSE:SBIN, LIVE", |s| {
        s.contains("NSE:SBIN") && live(s)
    });
    assert!(!s.contains("NSE:RELIANCE"), "not the starter list:\n{s}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    drop(t);

    // A corrupt one is reported, moved aside, and the starter list is used.
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data/tickmux");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("watchlist.json"), "{not json").unwrap();
    let t = Tmux::start_in(home, &[]);
    t.wait_for("the corrupt-file report and the starter list", |s| {
        s.contains("corrupt") && s.contains("NSE:RELIANCE") && live(s)
    });
    let aside: Vec<String> = std::fs::read_dir(t.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("watchlist.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read_to_string(t.data_dir().join(&aside[0])).unwrap(),
        "{not json"
    );
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
}

#[test]
fn without_a_terminal_it_points_to_stream() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tickmux"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("tickmux stream") && err.contains("tickmux demo"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
    // Nothing was started: no simulator, no log.
    assert!(!Path::new(&home.path().join("data/tickmux/logs")).exists());
}
