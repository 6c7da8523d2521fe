//! Shared rig for the official-client conformance tests: the interpreter (`TICKMUX_PYTHON`,
//! else `.venv-ci/bin/python`, else `python3`), `tickmux sim` as a child process, and a Python
//! script run with a deadline whose last stdout line is the JSON verdict.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Python that runs the official clients: `TICKMUX_PYTHON`, else `.venv-ci`'s (created by
/// `.ci/run`), else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("TICKMUX_PYTHON") {
        return p;
    }
    let venv = format!("{ROOT}/.venv-ci/bin/python");
    if Path::new(&venv).exists() {
        venv
    } else {
        "python3".to_string()
    }
}

/// A directory given by environment variable `var`, else `.venv-ci/<fallback>` (where
/// `.ci/run` installs it).
pub fn dir_from_env(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => Path::new(ROOT).join(".venv-ci").join(fallback),
    }
}

/// Panic with `hint` unless `code` runs under `py` (with `PYTHONPATH` = `path` when given).
/// A missing client is a failure, never a skip.
pub fn require(py: &str, code: &str, path: Option<&Path>, hint: &str) {
    let mut c = Command::new(py);
    c.args(["-c", code]);
    if let Some(p) = path {
        c.env("PYTHONPATH", p);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}; {hint}"));
    assert!(
        out.status.success(),
        "{hint}\n(python: {py}; PYTHONPATH: {path:?}; stderr: {})",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tickmux sim` as a child process (HOME and XDG dirs in a temp dir, so no user config leaks
/// in); killed on drop.
pub struct SimProcess {
    child: Child,
    /// Kept open: the simulator must never see a closed stdout.
    _stdout: BufReader<ChildStdout>,
    _home: tempfile::TempDir,
    /// The first stdout line: URLs, credentials and `brokers.{kite,angel,shoonya,flattrade}`.
    pub hello: Value,
}

impl SimProcess {
    pub fn start(tick_rate: u32) -> SimProcess {
        let home = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickmux"))
            .args(["sim", "--tick-rate", &tick_rate.to_string()])
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tickmux sim");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the sim's first line");
        let hello: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("tickmux sim's first line is not JSON ({e}): {line:?}"));
        SimProcess {
            child,
            _stdout: stdout,
            _home: home,
            hello,
        }
    }

    /// A top-level string of the hello line (`control_url`, `api_key`, ...).
    pub fn s(&self, key: &str) -> String {
        self.hello[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing from {}", self.hello))
            .to_string()
    }

    /// `brokers.<broker>.<key>` of the hello line (`ws_url`, `rest_url`, `instruments_url`).
    pub fn broker(&self, broker: &str, key: &str) -> String {
        self.hello["brokers"][broker][key]
            .as_str()
            .unwrap_or_else(|| panic!("brokers.{broker}.{key} missing from {}", self.hello))
            .to_string()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a script run produced.
pub struct Run {
    /// The last stdout line, parsed.
    pub result: Value,
    pub stderr: String,
    pub elapsed: Duration,
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// Run `script` (a path under `tests/conformance/`) with `args` under `py`, in `cwd`, with
/// `PYTHONPATH` = `pythonpath` when given; kill it after `deadline`. Panics when it hung or
/// its last stdout line is not JSON.
pub fn run_script(
    py: &str,
    script: &str,
    args: &[String],
    pythonpath: Option<&Path>,
    cwd: &Path,
    deadline: Duration,
) -> Run {
    let mut c = Command::new(py);
    c.arg(format!("{ROOT}/tests/conformance/{script}"))
        .args(args)
        .current_dir(cwd)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = pythonpath {
        c.env("PYTHONPATH", p);
    }
    let start = Instant::now();
    let mut child = c.spawn().expect("spawn the python client");
    // Drained while it runs, so a chatty client can never block on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let finished = loop {
        if child.try_wait().expect("poll the python client").is_some() {
            break true;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    assert!(
        finished,
        "{script} did not finish within {deadline:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let last = stdout.lines().last().unwrap_or("");
    let result = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script}: bad output ({e}): {stdout}\nstderr: {stderr}"));
    Run {
        result,
        stderr,
        elapsed,
    }
}

/// A JSON value as f64 (numbers, or strings holding numbers as Noren sends them).
pub fn f(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}
