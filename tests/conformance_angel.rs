//! Conformance: the official `smartapi-python` client (1.5.5, the newest on PyPI; with
//! websocket-client 1.9.2 and logzero 1.7.0, which it uses but does not declare) against the
//! simulator run as `tickmux sim` (brokers.md §2.8). Its own `SmartWebSocketV2` must receive
//! and parse LTP, Quote, SnapQuote and Depth-20 packets for an equity, an index and a future,
//! reconnect after a TCP reset and re-subscribe (with the token lists it doubles), see HTTP 401
//! with `x-error-message` for a wrong JWT or feed token, and its `SmartConnect` must read the
//! profile, quotes and LTP over REST.
//!
//! Needs Python with smartapi-python: `.ci/run` installs tests/conformance/requirements.txt into
//! `.venv-ci`; set `TICKMUX_PYTHON` to use another interpreter.

mod conformance_common;

use conformance_common::{SimProcess, f, python, require, run_script};
use serde_json::Value;
use std::time::Duration;

/// How websocket-client reports the simulator's TCP reset.
const DROPS: [&str; 4] = [
    "ConnectionResetError",
    "WebSocketConnectionClosedException",
    "BrokenPipeError",
    "ConnectionAbortedError",
];

#[test]
fn official_smartapi_client_parses_every_mode_reconnects_and_sees_401() {
    let py = python();
    require(
        &py,
        "import SmartApi.smartWebSocketV2, websocket, logzero",
        None,
        "smartapi-python (with websocket-client and logzero) is not installed: run .ci/run \
         (it installs tests/conformance/requirements.txt into .venv-ci) or set TICKMUX_PYTHON",
    );
    let sim = SimProcess::start(500);
    let cwd = tempfile::tempdir().unwrap();
    let run = run_script(
        &py,
        "angel_ws.py",
        &[
            sim.broker("angel", "ws_url"),
            sim.broker("angel", "rest_url"),
            sim.broker("angel", "instruments_url"),
            sim.s("control_url"),
            sim.s("api_key"),
            sim.s("access_token"),
            sim.s("client_code"),
            sim.s("feed_token"),
        ],
        None,
        cwd.path(),
        Duration::from_secs(90),
    );
    let (r, stderr) = (&run.result, &run.stderr);
    let ctx = || format!("{r:#}\nstderr: {stderr}");
    assert_eq!(r["completed"], true, "{}", ctx());
    assert_eq!(r["errors"], serde_json::json!([]), "{}", ctx());
    assert_eq!(r["violations"], serde_json::json!([]), "{}", ctx());
    assert_eq!(r["versions"]["smartapi-python"], "1.5.5");
    assert_eq!(r["versions"]["websocket-client"], "1.9.2");
    // Importing SmartApi tried api.ipify.org once and was refused (never reached the network).
    assert_eq!(r["ipify_refused"], 1, "{}", ctx());
    assert_eq!(
        r["logs_written"], true,
        "the SDK logs into its CWD, a temp dir"
    );

    // The simulator's Angel master.
    let ins = &r["instruments"];
    assert_eq!(ins["infy"], "1594");
    assert_eq!(ins["nifty"], "99926000");
    let fut = ins["future"].as_str().unwrap().to_string();
    assert!(ins["future_symbol"].as_str().unwrap().ends_with("FUT"));

    // REST through SmartConnect.
    let rest = &r["rest"];
    assert_eq!(rest["profile_status"], true, "{}", ctx());
    assert_eq!(rest["profile_clientcode"], sim.s("client_code").as_str());
    let mut want = vec!["1594".to_string(), "99926000".to_string(), fut.clone()];
    want.sort();
    assert_eq!(rest["quote_fetched"], serde_json::json!(want));
    assert_eq!(rest["quote_unfetched"], serde_json::json!(["999999"]));
    let q = &rest["quote_infy"];
    assert_eq!(q["tradingSymbol"], "INFY-EQ");
    assert_eq!(
        (q["buy_levels"].as_u64(), q["sell_levels"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(f(&q["lowerCircuit"]) < f(&q["ltp"]) && f(&q["ltp"]) < f(&q["upperCircuit"]));
    assert_eq!(rest["ltp_data"]["status"], true);
    assert_eq!(rest["ltp_data"]["tradingsymbol"], "INFY-EQ");
    assert!(f(&rest["ltp_data"]["ltp"]) > 0.0);
    let bad = &rest["bad_token"];
    assert_eq!(
        (&bad["status"], &bad["errorcode"]),
        (&Value::Bool(false), &"AG8001".into())
    );

    // The WebSocket: every (token, mode) ticked on both connections.
    let ws = &r["ws"];
    assert_eq!(
        ws["opens"],
        2,
        "connected, then reconnected after the reset: {}",
        ctx()
    );
    assert_eq!(
        (&ws["before"], &ws["after"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let keys: Vec<String> = ["1594", "99926000", fut.as_str()]
        .iter()
        .flat_map(|t| (1..=3).map(move |m| format!("{t}/{m}")))
        .chain(["1594/4".to_string()])
        .collect();
    for phase in 0..2 {
        let counts = ws["per_key"][phase].as_object().unwrap();
        let mut seen: Vec<&String> = counts.keys().collect();
        seen.sort();
        let mut k: Vec<&String> = keys.iter().collect();
        k.sort();
        assert_eq!(seen, k, "connection {}: {}", phase + 1, ctx());
    }
    let sample = |k: &str| {
        let v = &ws["samples"][k];
        assert!(v.is_object(), "no sample for {k}: {}", ctx());
        v
    };
    // LTP: paise on the wire, matching the REST quote (rupees).
    let ltp = sample("1594/1");
    assert_eq!(ltp["subscription_mode_val"], "LTP");
    assert_eq!(
        (ltp["exchange_type"].as_u64(), ltp["token"].as_str()),
        (Some(1), Some("1594"))
    );
    assert!(ltp["sequence_number"].as_i64().unwrap() > 0);
    let near = |paise: &Value, rupees: &Value| {
        let (p, r) = (f(paise) / 100.0, f(rupees));
        (p - r).abs() / r < 0.02
    };
    assert!(
        near(&ltp["last_traded_price"], &rest["quote_ltp"]["1594"]),
        "{}",
        ctx()
    );
    let idx = sample("99926000/1");
    assert_eq!(
        idx["sequence_number"], 0,
        "indices carry no sequence number"
    );
    assert!(near(
        &idx["last_traded_price"],
        &rest["quote_ltp"]["99926000"]
    ));
    let fl = sample(&format!("{fut}/1"));
    assert_eq!(fl["exchange_type"], 2, "nse_fo");
    assert!(near(
        &fl["last_traded_price"],
        &rest["quote_ltp"][fut.as_str()]
    ));
    // Quote.
    let qf = sample(&format!("{fut}/2"));
    assert_eq!(qf["subscription_mode_val"], "QUOTE");
    assert!(qf["volume_trade_for_the_day"].as_i64().unwrap() > 0);
    assert!(qf["total_buy_quantity"].as_f64().unwrap() > 0.0);
    assert!(qf.get("best_5_buy_data").is_none());
    let qi = sample("99926000/2");
    assert_eq!(qi["volume_trade_for_the_day"], 0);
    assert!(qi["closed_price"].as_i64().unwrap() > 0);
    // SnapQuote: the best five on both sides, circuits as REST gives them, OI for the future.
    let sq = sample("1594/3");
    assert_eq!(sq["subscription_mode_val"], "SNAP_QUOTE");
    let (buy, sell) = (
        sq["best_5_buy_data"].as_array().unwrap(),
        sq["best_5_sell_data"].as_array().unwrap(),
    );
    assert_eq!((buy.len(), sell.len()), (5, 5));
    assert!(f(&buy[0]["price"]) < f(&sell[0]["price"]));
    assert!(buy.iter().all(|e| e["flag"] == 1) && sell.iter().all(|e| e["flag"] == 0));
    assert!(buy[0]["no of orders"].as_u64().unwrap() > 0);
    let paise = |v: &Value| (f(v) * 100.0).round() as i64;
    assert_eq!(
        sq["lower_circuit_limit"].as_i64(),
        Some(paise(&q["lowerCircuit"]))
    );
    assert_eq!(
        sq["upper_circuit_limit"].as_i64(),
        Some(paise(&q["upperCircuit"]))
    );
    assert!(sq["52_week_low_price"].as_i64() < sq["52_week_high_price"].as_i64());
    assert!(
        sq["last_traded_timestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "epoch ms"
    );
    assert!(
        sample(&format!("{fut}/3"))["open_interest"]
            .as_i64()
            .unwrap()
            > 0
    );
    let si = sample("99926000/3");
    assert_eq!(si["upper_circuit_limit"], 0, "indices have no circuits");
    // Depth-20: 20 levels a side; the SDK drops the LTP and sequence fields for this mode.
    let d20 = sample("1594/4");
    assert_eq!(d20["depth_20_buy_data"].as_array().unwrap().len(), 20);
    assert_eq!(d20["depth_20_sell_data"].as_array().unwrap().len(), 20);
    assert!(d20.get("last_traded_price").is_none() && d20["packet_received_time"].is_i64());

    // The reconnect: one retry (the SDK's default budget), on_open re-sent every subscribe with
    // the token lists doubled, and the simulator kept one subscription per (token, mode).
    let sent: Vec<u64> = ws["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [3, 3, 3, 1, 6, 6, 6, 2], "{}", ctx());
    assert_eq!(
        ws["sim_connections"],
        serde_json::json!([{"subscribe_messages": 4, "tokens_subscribed_total": 20,
                            "duplicate_subscribes": 10, "keys": 3}]),
        "{}",
        ctx()
    );
    // The SDK's retry was triggered by the drop (how the reset surfaces depends on timing).
    let drop = ws["raw_errors"][0]["type"].as_str().unwrap_or("");
    assert!(DROPS.contains(&drop), "{}", ctx());
    assert_eq!(ws["closed_by_sdk"], true);
    assert_eq!(
        ws["thread_ended"], true,
        "connect() returned after close_connection()"
    );

    // Wrong credentials: HTTP 401 with the reason, reported through on_error, no data.
    let bad = r["bad_auth"].as_array().unwrap();
    assert_eq!(bad.len(), 2);
    for (case, reason) in bad.iter().zip(["Invalid Auth token", "Invalid Feed Token"]) {
        let e = &case["raw_errors"][0];
        assert_eq!(e["type"], "WebSocketBadStatusException", "{}", ctx());
        assert_eq!(
            (e["status"].as_u64(), e["x_error_message"].as_str()),
            (Some(401), Some(reason))
        );
        assert_eq!(case["on_error"], true);
        let user = case["user_errors"][0].as_str().unwrap();
        assert!(user.starts_with("Max retry attempt reached"), "{user}");
        assert_eq!(
            (case["ticks"].as_u64(), case.get("opened")),
            (Some(0), None)
        );
        assert_eq!(case["thread_ended"], true);
    }
    eprintln!("smartapi-python conformance took {:?}", run.elapsed);
}
