//! Conformance: the official NorenOMS Python clients against the simulator run as
//! `tickmux sim`, on Shoonya's paths (`/NorenWSTP/`, `/NorenWClientTP/`; brokers.md §3.8):
//!
//! - classic: PyPI `NorenRestApiPy` 0.0.22 (login `t:"c"` + susertoken, REST `&jKey=`), the
//!   build Shoonya's `api_helper.py` uses;
//! - OAuth: PyPI `norenrestapi` 0.0.37 (login `t:"a"` + accesstoken, REST
//!   `Authorization: Bearer`).
//!
//! Both install as the module `NorenRestApiPy`, so `.ci/run` puts each in its own
//! `pip install --target` directory (`.venv-ci/noren-classic`, `.venv-ci/noren-oauth`; override
//! with `TICKMUX_NOREN_CLASSIC` / `TICKMUX_NOREN_OAUTH`) and each test puts one on
//! `PYTHONPATH`. With either, `NorenApi` must read limits and quotes over REST, receive
//! touchline and depth snapshots and sparse deltas (all strings) through its callbacks,
//! log in and re-subscribe after a TCP reset, and report a wrong token's `ck Not_Ok` through
//! `socket_error_callback`.
//!
//! The interpreter is `TICKMUX_PYTHON`, else `.venv-ci/bin/python`; it provides requests and
//! websocket-client (tests/conformance/requirements.txt).

mod conformance_common;

use conformance_common::{SimProcess, dir_from_env, f, python, require, run_script};
use serde_json::{Value, json};
use std::time::Duration;

/// One build: its env var, `.venv-ci` directory, distribution name and version.
struct Build {
    name: &'static str,
    var: &'static str,
    dir: &'static str,
    dist: &'static str,
    version: &'static str,
}

const CLASSIC: Build = Build {
    name: "classic",
    var: "TICKMUX_NOREN_CLASSIC",
    dir: "noren-classic",
    dist: "NorenRestApiPy",
    version: "0.0.22",
};

const OAUTH: Build = Build {
    name: "oauth",
    var: "TICKMUX_NOREN_OAUTH",
    dir: "noren-oauth",
    dist: "norenrestapi",
    version: "0.0.37",
};

fn conformance(b: &Build) {
    let py = python();
    let path = dir_from_env(b.var, b.dir);
    let hint = format!(
        "{} {} is not installed in {}: run .ci/run (it installs \
         tests/conformance/requirements-noren-{}.txt there with pip --target) or set {} to such \
         a directory (and TICKMUX_PYTHON to a Python with requests and websocket-client)",
        b.dist,
        b.version,
        path.display(),
        b.name,
        b.var
    );
    assert!(path.join("NorenRestApiPy").is_dir(), "{hint}");
    require(
        &py,
        "import NorenRestApiPy.NorenApi, requests, websocket",
        Some(&path),
        &hint,
    );

    let sim = SimProcess::start(500);
    let cwd = tempfile::tempdir().unwrap();
    let run = run_script(
        &py,
        "noren_ws.py",
        &[
            b.name.to_string(),
            sim.broker("shoonya", "ws_url"),
            sim.broker("shoonya", "rest_url"),
            sim.broker("shoonya", "instruments_url"),
            sim.s("control_url"),
            sim.s("client_code"),
            sim.s("access_token"),
        ],
        Some(&path),
        cwd.path(),
        Duration::from_secs(90),
    );
    let (r, stderr) = (&run.result, &run.stderr);
    let ctx = || format!("{r:#}\nstderr: {stderr}");
    assert_eq!(r["completed"], true, "{}", ctx());
    assert_eq!(r["errors"], json!([]), "{}", ctx());
    assert_eq!(r["violations"], json!([]), "{}", ctx());
    // The build that ran is the one asked for, from the directory given.
    assert_eq!(r["dists"], json!([[b.dist, b.version]]), "{}", ctx());
    let module_dir = std::fs::canonicalize(r["module_dir"].as_str().unwrap()).unwrap();
    assert_eq!(module_dir, std::fs::canonicalize(&path).unwrap());
    assert_eq!(r["websocket_client"], "1.9.2");
    assert_eq!(
        r["scrips"],
        json!({"infy": "NSE|1594", "nifty": "NSE|26000", "future": r["scrips"]["future"]})
    );
    let fut = r["scrips"]["future"].as_str().unwrap().to_string();
    assert!(fut.starts_with("NFO|"), "{fut}");

    // REST: the jData body (and jKey or the Bearer header) works; errors come back as Not_Ok.
    let rest = &r["rest"];
    let client = sim.s("client_code");
    assert_eq!(rest["limits"]["stat"], "Ok", "{}", ctx());
    assert_eq!(rest["limits"]["actid"], client.as_str());
    assert!(f(&rest["limits"]["cash"]) > 0.0);
    let q = &rest["quote"];
    assert_eq!(
        (&q["stat"], &q["tsym"], &q["token"]),
        (&"Ok".into(), &"INFY-EQ".into(), &"1594".into())
    );
    assert_eq!(
        (&q["pp"], &q["ti"], &q["ls"]),
        (&"2".into(), &"0.05".into(), &"1".into())
    );
    assert!(
        f(&q["lc"]) < f(&q["lp"]) && f(&q["lp"]) < f(&q["uc"]),
        "{q}"
    );
    assert!(f(&q["bp1"]) < f(&q["sp1"]) && f(&q["l"]) <= f(&q["h"]));
    assert_eq!(rest["quote_all_strings"], true);
    assert_eq!(
        rest["unknown_quote"],
        Value::Null,
        "the client returns None on Not_Ok"
    );
    assert_eq!(rest["bad_token"]["stat"], "Not_Ok");
    assert!(
        rest["bad_token"]["emsg"]
            .as_str()
            .unwrap()
            .contains("Invalid Session Key")
    );
    if b.name == "oauth" {
        // 0.0.37's set_session() does not set the Bearer header REST calls use: without
        // injectOAuthHeader() they carry no token at all, and the simulator refuses them.
        assert_eq!(rest["limits_before_oauth_header"], "Not_Ok");
    }

    // The WebSocket: snapshots first, then sparse deltas, on both connections.
    let ws = &r["ws"];
    assert_eq!(
        ws["opens"],
        2,
        "logged in, then again after the reset: {}",
        ctx()
    );
    assert_eq!(
        (&ws["before"], &ws["after"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let first = json!({
        "t/NSE|1594": "tk", "t/NSE|26000": "tk", format!("t/{fut}"): "tk",
        "d/NSE|1594": "dk", format!("d/{fut}"): "dk",
    });
    assert_eq!(ws["first_types"], json!([first, first]), "{}", ctx());
    for phase in 0..2 {
        let counts = ws["per_key"][phase].as_object().unwrap();
        assert!(
            counts.values().all(|n| n.as_u64().unwrap() >= 10),
            "{counts:?}"
        );
    }
    let snap = |k: &str| {
        let v = &ws["snapshots"][0][k];
        assert!(v.is_object(), "no snapshot for {k}: {}", ctx());
        v
    };
    let tk = snap("t/NSE|1594");
    assert_eq!(
        (&tk["ts"], &tk["pp"], &tk["ti"], &tk["ls"]),
        (&"INFY-EQ".into(), &"2".into(), &"0.05".into(), &"1".into())
    );
    assert!(f(&tk["lp"]) > 0.0 && f(&tk["v"]) > 0.0 && f(&tk["bp1"]) < f(&tk["sp1"]));
    let rest_lp = f(&q["lp"]);
    assert!(
        (f(&tk["lp"]) - rest_lp).abs() / rest_lp < 0.02,
        "WS and REST agree"
    );
    let idx = snap("t/NSE|26000");
    assert_eq!(idx["ts"], "Nifty 50");
    assert!(idx.get("bp1").is_none(), "an index has no book: {idx}");
    assert!(f(&idx["lp"]) > 1000.0);
    let tf = snap(&format!("t/{fut}"));
    assert!(
        f(&tf["oi"]) > 0.0 && f(&tf["ls"]) > 1.0,
        "a future has OI and a lot: {tf}"
    );
    let dk = snap("d/NSE|1594");
    for i in 1..=5 {
        for side in ["bp", "bq", "bo", "sp", "sq", "so"] {
            assert!(f(&dk[format!("{side}{i}")]) > 0.0, "{side}{i} in {dk}");
        }
    }
    for k in ["ltt", "ltq", "tbq", "tsq"] {
        assert!(dk[k].is_string(), "{k} in {dk}");
    }
    assert_eq!(
        (&dk["lc"], &dk["uc"]),
        (&q["lc"], &q["uc"]),
        "depth circuits = GetQuotes'"
    );
    assert!(f(&dk["52l"]) < f(&dk["l"]) && f(&dk["h"]) < f(&dk["52h"]));
    // Deltas are sparse: only what changed (a tf without lp is normal).
    assert!(ws["tf_without_lp"].as_u64().unwrap() > 0, "{}", ctx());
    assert!(ws["sparse_deltas"].as_u64().unwrap() > 0);
    let tk_fields = tk.as_object().unwrap().len() as u64;
    assert!(ws["max_delta_fields"]["tf"].as_u64().unwrap() < tk_fields);
    // After the reconnect the simulator holds exactly what the open callback re-sent.
    let conns = ws["sim_connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{}", ctx());
    assert_eq!(conns[0]["broker"], "shoonya");
    assert_eq!(conns[0]["subscribe_messages"], 2);
    assert_eq!(conns[0]["keys"].as_array().unwrap().len(), 3, "{}", ctx());
    // socket_error_callback heard the drop (how the reset surfaces depends on timing).
    let reset = ws["socket_errors"][0].as_str().unwrap_or("");
    let drops = [
        "ConnectionResetError",
        "WebSocketConnectionClosedException",
        "BrokenPipeError",
        "ConnectionAbortedError",
    ];
    assert!(drops.iter().any(|d| reset.starts_with(d)), "{}", ctx());
    assert_eq!(ws["closed_in_callback"], true);
    assert_eq!(
        ws["loop_ended"], true,
        "close_websocket() stopped the reconnect loop"
    );

    // A wrong token: ck Not_Ok reaches socket_error_callback; one connection, no data.
    let bad = &r["bad_ws"];
    assert_eq!(
        bad["errors"],
        json!([{"t": "ck", "s": "Not_Ok", "emsg": "Invalid Session Key"}]),
        "{}",
        ctx()
    );
    assert_eq!(
        (bad["opens"].as_u64(), bad["feed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(bad["error_callback"], true);
    assert_eq!(
        bad["loop_ended"], true,
        "the 10 Hz reconnect loop was stopped"
    );
    assert_eq!(
        (bad["rejected_auth"].as_u64(), bad["connections"].as_u64()),
        (Some(1), Some(1))
    );
    eprintln!("NorenApi {} conformance took {:?}", b.version, run.elapsed);
}

#[test]
fn official_noren_classic_client_0_0_22_on_shoonya_paths() {
    conformance(&CLASSIC);
}

#[test]
fn official_noren_oauth_client_0_0_37_on_shoonya_paths() {
    conformance(&OAUTH);
}
