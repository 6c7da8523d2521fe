//! The simulator's NorenOMS protocol (Shoonya at `/NorenWSTP/`, Flattrade at
//! `/PiConnectWSAPI/`) and REST, over real sockets on 127.0.0.1, driven with tokio-tungstenite
//! and tickmux's Noren codec: login acks per path, tk then sparse tf, dk/df, acks, pings,
//! every generic fault, REST with raw `jData` bodies, and the zipped masters.

mod sim_common;

use futures_util::SinkExt;
use serde_json::{Value, json};
use sim_common::*;
use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::Duration;
use tickmux::adapters::noren::codec::{self as nc, Feed, Flavour, NorenDecoder, NorenMessage};
use tickmux::model::{FeedKey, Mode, Tick};
use tickmux::sim::{self, Fault, Sim, SimBroker};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const INFY: FeedKey = FeedKey {
    seg: 1,
    token: 1594,
};
const RELIANCE: FeedKey = FeedKey {
    seg: 1,
    token: 2885,
};
const NIFTY: FeedKey = FeedKey {
    seg: 1,
    token: 26000,
};
const NIFTY_CE: FeedKey = FeedKey {
    seg: 2,
    token: 38007,
};

fn flavour(b: SimBroker) -> Flavour {
    if b == SimBroker::Flattrade {
        Flavour::Flattrade
    } else {
        Flavour::Classic
    }
}

/// Upgrade and log in (classic `t:"c"` on Shoonya, `t:"a"` on Flattrade); returns the ack.
async fn login(sim: &Sim, b: SimBroker, uid: &str, token: &str) -> (Client, Value) {
    let mut ws = try_plain(sim, b).await.expect("Noren upgrade");
    send(&mut ws, nc::encode_login(flavour(b), uid, token)).await;
    let ack = next_text(&mut ws, LONG).await.expect("a login reply");
    (ws, serde_json::from_str(&ack).unwrap())
}

async fn noren(sim: &Sim, b: SimBroker) -> Client {
    let (ws, ack) = login(sim, b, "SIM001", "sim_access_token").await;
    assert_eq!(ack["s"], "OK", "{ack}");
    ws
}

fn subscribe(feed: Feed, keys: &[FeedKey]) -> String {
    nc::encode_subscribe(feed, keys).unwrap().remove(0)
}

/// Read text messages (each must be a JSON object; feed messages carry only strings) until
/// `done`.
async fn read_until(
    ws: &mut Client,
    limit: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    while !done(&all) {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON text");
                let o = v.as_object().expect("an object");
                if matches!(v["t"].as_str(), Some("tk" | "tf" | "dk" | "df")) {
                    assert!(o.values().all(Value::is_string), "all strings: {v}");
                }
                all.push(v);
            }
            Some(Ok(Message::Pong(_))) => {}
            other => panic!("unexpected {other:?} after {} messages", all.len()),
        }
    }
    all
}

fn of<'a>(msgs: &'a [Value], t: &str, tk: u32) -> Vec<&'a Value> {
    let tk = tk.to_string();
    msgs.iter()
        .filter(|m| m["t"] == t && m["tk"] == tk.as_str())
        .collect()
}

/// Barrier: the server handles messages in order, and ignores `{"t":"h"}`; an order
/// subscribe's `ok` proves everything before it was handled.
async fn barrier(ws: &mut Client) -> Vec<Value> {
    send(ws, r#"{"t":"o","actid":"SIM001"}"#).await;
    read_until(ws, LONG, |m| m.iter().any(|m| m["t"] == "ok")).await
}

#[tokio::test]
async fn login_acks_per_path_and_rejections() {
    let sim = start().await;
    let ctl = sim.control();
    let mut open = Vec::new();
    for (b, kind, want) in [
        (SimBroker::Shoonya, Flavour::Classic, "ck"),
        (SimBroker::Shoonya, Flavour::OAuth, "ck"),
        (SimBroker::Flattrade, Flavour::Flattrade, "ak"),
        (SimBroker::Flattrade, Flavour::Classic, "ck"),
    ] {
        let mut ws = try_plain(&sim, b).await.unwrap();
        send(
            &mut ws,
            nc::encode_login(kind, "SIM001", "sim_access_token"),
        )
        .await;
        let ack = next_text(&mut ws, LONG).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&ack).unwrap(),
            json!({"t": want, "s": "OK", "uid": "SIM001"})
        );
        // Each official build connects on its own broker's path.
        assert!(matches!(
            nc::parse_message(&ack, kind).unwrap(),
            NorenMessage::Connected { .. }
        ));
        open.push(ws);
    }
    eventually(LONG, "logged in", || {
        let s = ctl.stats();
        s.connections.len() == 4 && s.connections.iter().all(|c| c.authenticated)
    })
    .await;
    // Bad token or uid: Not_Ok, then a close.
    for (uid, token) in [("SIM001", "expired"), ("FA99999", "sim_access_token")] {
        let (mut ws, ack) = login(&sim, SimBroker::Shoonya, uid, token).await;
        assert_eq!(
            ack,
            json!({"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"})
        );
        assert_eq!(close_of(until_end(&mut ws).await).0, 1000);
    }
    assert_eq!(ctl.stats().rejected_auth, 2);
    // Before the login, requests are ignored; the socket stays usable.
    let mut ws = try_plain(&sim, SimBroker::Shoonya).await.unwrap();
    send(&mut ws, subscribe(Feed::Touchline, &[INFY])).await;
    send(&mut ws, "garbage").await;
    assert!(next(&mut ws, Duration::from_millis(300)).await.is_none());
    send(
        &mut ws,
        nc::encode_login(Flavour::Classic, "SIM001", "sim_access_token"),
    )
    .await;
    assert!(
        next_text(&mut ws, LONG)
            .await
            .unwrap()
            .contains(r#""s":"OK""#)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn touchline_snapshot_then_sparse_deltas() {
    let sim = start().await;
    let mut ws = noren(&sim, SimBroker::Shoonya).await;
    send(
        &mut ws,
        subscribe(Feed::Touchline, &[INFY, NIFTY, NIFTY_CE]),
    )
    .await;
    let msgs = read_until(&mut ws, LONG, |m| {
        of(m, "tf", 1594).len() >= 10 && of(m, "tf", 38007).len() >= 3
    })
    .await;
    // One snapshot per scrip, first, before any delta.
    for key in [INFY, NIFTY, NIFTY_CE] {
        let tk = of(&msgs, "tk", key.token);
        assert_eq!(tk.len(), 1, "one tk for {key}");
        let first = msgs
            .iter()
            .position(|m| m["tk"] == key.token.to_string().as_str())
            .unwrap();
        assert_eq!(msgs[first]["t"], "tk");
    }
    let tk = of(&msgs, "tk", 1594)[0];
    assert_eq!(
        (&tk["e"], &tk["ts"], &tk["pp"], &tk["ti"], &tk["ls"]),
        (
            &json!("NSE"),
            &json!("INFY-EQ"),
            &json!("2"),
            &json!("0.05"),
            &json!("1")
        )
    );
    for k in [
        "lp", "o", "h", "l", "c", "v", "ap", "bp1", "sp1", "bq1", "sq1", "ft",
    ] {
        assert!(tk[k].is_string(), "{k} in {tk}");
    }
    assert_eq!(of(&msgs, "tk", 26000)[0]["ts"], "Nifty 50");
    assert_eq!(of(&msgs, "tk", 38007)[0]["ts"], "NIFTY24NOV26C26100");
    // Deltas are sparse: never the static fields, and fewer fields than the snapshot.
    let tk_len = tk.as_object().unwrap().len();
    for d in of(&msgs, "tf", 1594) {
        let o = d.as_object().unwrap();
        assert!(o.len() < tk_len, "{d}");
        assert!(!o.contains_key("ts") && !o.contains_key("pp") && !o.contains_key("ls"));
    }
    // Merged by our decoder: every tick coherent.
    let mut dec = NorenDecoder::new(Flavour::Classic);
    let mut ticks: Vec<Tick> = Vec::new();
    for m in &msgs {
        dec.decode(&m.to_string(), &mut ticks).unwrap();
    }
    let infy: Vec<&Tick> = ticks.iter().filter(|t| t.key == INFY).collect();
    assert_eq!(infy.len(), 1 + of(&msgs, "tf", 1594).len());
    for t in infy {
        let q = t.quote.unwrap();
        assert!(q.ohlc.low <= t.ltp && t.ltp <= q.ohlc.high, "{t:?}");
        assert_eq!(t.ltp.0 % 500_000, 0);
    }
    let keys = &sim.control().stats().connections[0].keys;
    assert_eq!(keys.get(&INFY), Some(&Mode::Quote));
    sim.shutdown().await;
}

#[tokio::test]
async fn depth_feed_both_feeds_and_acks() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = noren(&sim, SimBroker::Flattrade).await;
    send(&mut ws, subscribe(Feed::Depth, &[RELIANCE])).await;
    send(&mut ws, subscribe(Feed::Touchline, &[RELIANCE, INFY])).await;
    let msgs = read_until(&mut ws, LONG, |m| {
        of(m, "df", 2885).len() >= 3 && of(m, "tf", 2885).len() >= 3
    })
    .await;
    let dk = of(&msgs, "dk", 2885);
    assert_eq!(dk.len(), 1);
    for k in ["bp5", "sq5", "bo1", "so5", "ltq", "tbq", "tsq", "ltt"] {
        assert!(dk[0][k].is_string(), "{k} in {}", dk[0]);
    }
    // Circuits and the 52-week range (brokers.md §3.3) come with the snapshot, around the
    // day's prices, and never in a delta (they do not change).
    let px = |k: &str| -> f64 { dk[0][k].as_str().unwrap().parse().unwrap() };
    assert!(px("lc") < px("lp") && px("lp") < px("uc"), "{}", dk[0]);
    assert!(px("52l") <= px("l") && px("h") <= px("52h"), "{}", dk[0]);
    assert!(of(&msgs, "df", 2885).iter().all(|m| {
        ["uc", "lc", "52h", "52l"]
            .iter()
            .all(|k| m.get(k).is_none())
    }));
    let mut dec = NorenDecoder::new(Flavour::Flattrade);
    let mut ticks = Vec::new();
    for m in &msgs {
        dec.decode(&m.to_string(), &mut ticks).unwrap();
    }
    let d = ticks
        .iter()
        .rfind(|t| t.mode == Mode::Depth)
        .unwrap()
        .depth
        .unwrap();
    assert!(d.buy[0].price < d.sell[0].price);
    assert!(
        d.buy
            .iter()
            .zip(&d.buy[1..])
            .all(|(a, b)| a.price > b.price)
    );
    let keys = ctl.stats().connections[0].keys.clone();
    assert_eq!(
        keys.get(&RELIANCE),
        Some(&Mode::Depth),
        "both feeds → depth"
    );
    assert_eq!(keys.get(&INFY), Some(&Mode::Quote));

    // Unsubscribe acks name the keys; afterwards the feed stops.
    send(&mut ws, r#"{"t":"ud","k":"NSE|2885"}"#).await;
    let m = read_until(&mut ws, LONG, |m| m.iter().any(|m| m["t"] == "udk")).await;
    assert_eq!(m.last().unwrap(), &json!({"t":"udk","k":"NSE|2885"}));
    send(&mut ws, r#"{"t":"u","k":"NSE|2885#NSE|1594"}"#).await;
    let m = read_until(&mut ws, LONG, |m| m.iter().any(|m| m["t"] == "uk")).await;
    assert_eq!(
        m.last().unwrap(),
        &json!({"t":"uk","k":"NSE|2885#NSE|1594"})
    );
    let after = barrier(&mut ws).await;
    assert_eq!(after.last().unwrap(), &json!({"t":"ok"}));
    assert!(ctl.stats().connections[0].keys.is_empty());
    send(&mut ws, r#"{"t":"uo"}"#).await;
    send(&mut ws, r#"{"k":"","t":"h"}"#).await;
    send(&mut ws, r#"{"k":"NSE|1594"}"#).await; // the client's unsubscribe without `t`
    assert_eq!(
        serde_json::from_str::<Value>(&next_text(&mut ws, LONG).await.unwrap()).unwrap(),
        json!({"t":"uok"})
    );
    assert!(ping_is_answered(&mut ws, br#"{"t":"h"}"#).await);
    assert!(goes_silent(&mut ws, Duration::from_millis(300)).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_subscribe_brings_a_fresh_snapshot() {
    let sim = start().await;
    let mut ws = noren(&sim, SimBroker::Shoonya).await;
    send(&mut ws, subscribe(Feed::Touchline, &[INFY, INFY])).await;
    read_until(&mut ws, LONG, |m| of(m, "tf", 1594).len() >= 2).await;
    send(&mut ws, subscribe(Feed::Touchline, &[INFY])).await;
    let m = read_until(&mut ws, LONG, |m| !of(m, "tk", 1594).is_empty()).await;
    assert!(m.len() < 50);
    let c = sim.control().stats().connections[0].clone();
    assert_eq!((c.subscribe_messages, c.duplicate_subscribes), (2, 2));
    assert_eq!(c.keys.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn generic_faults_on_noren() {
    let sim = start().await;
    let ctl = sim.control();
    let b = SimBroker::Shoonya;

    let mut ws = noren(&sim, b).await;
    ctl.inject(Fault::Close { code: 4002 }, None);
    assert_eq!(close_of(until_end(&mut ws).await).0, 4002);

    let mut ws = noren(&sim, b).await;
    ctl.inject(Fault::Reset, None);
    assert!(matches!(until_end(&mut ws).await, Some(Err(_))));
    eventually(LONG, "gone", || ctl.stats().open_connections == 0).await;

    // blackhole: no data, no pongs; new upgrades hang
    let mut ws = noren(&sim, b).await;
    send(&mut ws, subscribe(Feed::Touchline, &[INFY])).await;
    read_until(&mut ws, LONG, |m| !of(m, "tf", 1594).is_empty()).await;
    ctl.inject(Fault::Blackhole, None);
    assert!(goes_silent(&mut ws, Duration::from_millis(300)).await);
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    assert!(next(&mut ws, Duration::from_millis(300)).await.is_none());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), try_plain(&sim, b))
            .await
            .is_err()
    );
    ctl.clear();
    read_until(&mut ws, LONG, |m| !of(m, "tf", 1594).is_empty()).await;
    drop(ws);

    // heartbeats_only: pings answered, login and control acks still work, no market data
    let mut ws = noren(&sim, b).await;
    send(&mut ws, subscribe(Feed::Touchline, &[INFY])).await;
    read_until(&mut ws, LONG, |m| !of(m, "tf", 1594).is_empty()).await;
    ctl.inject(Fault::HeartbeatsOnly, None);
    assert!(goes_silent(&mut ws, Duration::from_millis(200)).await);
    assert!(ping_is_answered(&mut ws, br#"{"t":"h"}"#).await);
    send(&mut ws, subscribe(Feed::Touchline, &[RELIANCE])).await;
    let m = barrier(&mut ws).await;
    assert_eq!(m, [json!({"t":"ok"})], "no snapshot under heartbeats_only");
    let _other = noren(&sim, b).await;
    ctl.clear();
    // Snapshots owed are sent first once data flows again.
    let m = read_until(&mut ws, LONG, |m| !of(m, "tk", 2885).is_empty()).await;
    assert!(of(&m, "tf", 2885).is_empty());
    drop(ws);

    // reject403: Noren's token rejection is a Not_Ok login; reject429 a 429 upgrade
    ctl.inject(Fault::Reject403, None);
    let (mut ws, ack) = login(&sim, b, "SIM001", "sim_access_token").await;
    assert_eq!(ack["s"], "Not_Ok");
    assert_eq!(close_of(until_end(&mut ws).await).0, 1000);
    ctl.clear();
    ctl.inject(Fault::Reject429, None);
    assert_eq!(rejected(try_plain(&sim, b).await).0, 429);
    ctl.clear();

    ctl.inject(Fault::AcceptThenClose, None);
    let mut ws = try_plain(&sim, SimBroker::Flattrade).await.unwrap();
    assert_eq!(close_of(next(&mut ws, LONG).await).0, 1000);
    ctl.clear();

    ctl.inject(Fault::HangHandshake, None);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), try_plain(&sim, b))
            .await
            .is_err()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_ignored_quiet_and_rejected_on_noren() {
    let sim = start().await;
    let ctl = sim.control();
    let mut ws = noren(&sim, SimBroker::Shoonya).await;
    ctl.inject(Fault::Malformed, None);
    send(&mut ws, subscribe(Feed::Touchline, &[INFY])).await;
    let mut dec = NorenDecoder::new(Flavour::Classic);
    let (mut good, mut bad, mut out) = (0, 0, Vec::new());
    let deadline = Instant::now() + LONG;
    while good < 5 || bad < 5 {
        match next(&mut ws, deadline - Instant::now()).await {
            Some(Ok(Message::Text(t))) => match dec.decode(&t, &mut out) {
                Ok(_) => good += 1,
                Err(_) => bad += 1,
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(out.iter().all(|t| t.key == INFY));
    ctl.clear();
    drop(ws);

    // Quiet, rejected: nothing at all (a snapshot is a tick). Quiet ends: the snapshot first.
    ctl.inject(Fault::Quiet { tokens: vec![1594] }, None);
    ctl.inject(Fault::RejectTokens { tokens: vec![2885] }, None);
    let mut ws = noren(&sim, SimBroker::Shoonya).await;
    send(
        &mut ws,
        subscribe(Feed::Touchline, &[INFY, RELIANCE, NIFTY]),
    )
    .await;
    let m = read_until(&mut ws, LONG, |m| of(m, "tf", 26000).len() >= 20).await;
    assert!(m.iter().all(|m| m["tk"] != "1594" && m["tk"] != "2885"));
    ctl.clear();
    let m = read_until(&mut ws, LONG, |m| !of(m, "tf", 1594).is_empty()).await;
    assert_eq!(
        of(&m, "tk", 1594).len(),
        1,
        "snapshot before the first delta"
    );
    let first = m.iter().position(|m| m["tk"] == "1594").unwrap();
    assert_eq!(m[first]["t"], "tk");
    assert!(
        m.iter().all(|m| m["tk"] != "2885"),
        "rejected stays unsubscribed"
    );

    // Acked but silent: subscriptions made under the fault never tick, not even a snapshot.
    ctl.inject(Fault::IgnoreSubscriptions, None);
    send(&mut ws, subscribe(Feed::Depth, &[NIFTY_CE])).await;
    let m = read_until(&mut ws, LONG, |m| of(m, "tf", 1594).len() >= 20).await;
    assert!(m.iter().all(|m| m["tk"] != "38007"));
    let keys = &ctl.stats().connections[0].keys;
    assert_eq!(keys.get(&NIFTY_CE), Some(&Mode::Depth), "recorded");
    sim.shutdown().await;
}

#[tokio::test]
async fn synthetic_nfo_scrips_tick() {
    let sim = start().await;
    let mut ws = noren(&sim, SimBroker::Flattrade).await;
    let keys: Vec<FeedKey> = (0..300)
        .map(|n| sim::synthetic_key(SimBroker::Flattrade, n))
        .collect();
    assert_eq!(
        keys[0],
        FeedKey {
            seg: 2,
            token: 65536
        }
    );
    for batch in nc::encode_subscribe(Feed::Touchline, &keys).unwrap() {
        send(&mut ws, batch).await;
    }
    let m = read_until(&mut ws, LONG, |m| {
        m.iter().filter(|m| m["t"] == "tk").count() == 300
    })
    .await;
    let syms: BTreeSet<&str> = m.iter().filter_map(|m| m["ts"].as_str()).collect();
    assert!(syms.contains("SYNTH0") && syms.contains("SYNTH299"));
    sim.shutdown().await;
}

// ------------------------------------------------------------------------------------------
// REST and masters
// ------------------------------------------------------------------------------------------

/// POST a raw body (as the official clients do: no Content-Type, JSON not URL-encoded).
async fn raw_post(url: String, body: String, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(t) = bearer {
        req = req
            .header("Authorization", format!("Bearer {t}"))
            .header("Content-Type", "application/json; charset=utf-8");
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn jdata(v: Value, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("jData={v}&jKey={k}"),
        None => format!("jData={v}"),
    }
}

#[tokio::test]
async fn rest_limits_and_quotes_with_raw_bodies() {
    let sim = start().await;
    let host = sim.rest_url_for(SimBroker::Shoonya);
    assert!(host.ends_with("/NorenWClientTP/"));
    let uid = json!({"uid":"SIM001","actid":"SIM001"});
    // The client joins host + "/Limits": a double slash.
    let (status, v) = raw_post(
        format!("{host}/Limits"),
        jdata(uid.clone(), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!((status, &v["stat"]), (200, &json!("Ok")), "{v}");
    let (_, v) = raw_post(
        format!("{host}/Limits"),
        jdata(uid.clone(), Some("old")),
        None,
    )
    .await;
    assert_eq!(
        (&v["stat"], &v["emsg"]),
        (
            &json!("Not_Ok"),
            &json!("Session Expired :  Invalid Session Key")
        )
    );
    // The OAuth build: no jKey, a Bearer header.
    let ft = sim.rest_url_for(SimBroker::Flattrade);
    let (_, v) = raw_post(
        format!("{ft}/UserDetails"),
        jdata(uid.clone(), None),
        Some("sim_access_token"),
    )
    .await;
    assert_eq!((&v["stat"], &v["actid"]), (&json!("Ok"), &json!("SIM001")));
    let (_, v) = raw_post(format!("{ft}Limits"), jdata(uid, None), Some("bad")).await;
    assert_eq!(v["stat"], "Not_Ok");

    let q = |exch: &str, token: &str| json!({"uid":"SIM001","exch":exch,"token":token});
    let (_, v) = raw_post(
        format!("{host}/GetQuotes"),
        jdata(q("NSE", "1594"), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!(
        (&v["stat"], &v["tsym"], &v["token"]),
        (&json!("Ok"), &json!("INFY-EQ"), &json!("1594"))
    );
    let o = v.as_object().unwrap();
    assert!(o.values().all(Value::is_string), "all strings: {v}");
    for k in [
        "request_time",
        "exch",
        "cname",
        "symname",
        "seg",
        "instname",
        "pp",
        "ls",
        "ti",
        "mult",
        "uc",
        "lc",
        "prcftr_d",
        "lp",
        "o",
        "h",
        "l",
        "c",
        "v",
        "ltq",
        "ltt",
        "bp1",
        "sp5",
        "bq3",
        "sq1",
        "bo2",
        "so5",
    ] {
        assert!(o.contains_key(k), "{k} missing: {v}");
    }
    let lp = nc::parse_price(v["lp"].as_str().unwrap()).unwrap();
    assert!(lp.0 > 1000 * 10_000_000);
    let (_, v) = raw_post(
        format!("{host}/GetQuotes"),
        jdata(q("CDS", "4101"), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!(v["pp"], "4");
    let (_, v) = raw_post(
        format!("{host}/GetQuotes"),
        jdata(q("NSE", "999999"), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!(v["stat"], "Not_Ok");
    // URL-encoded bodies work too (a generic HTTP client's form post).
    let form = format!(
        "jData={}&jKey=sim_access_token",
        url_escape(&q("NSE", "26000").to_string())
    );
    let (_, v) = raw_post(format!("{host}GetQuotes"), form, None).await;
    assert_eq!(v["tsym"], "Nifty 50");

    let ctl = sim.control();
    ctl.inject(Fault::Reject429, None);
    let (status, v) = raw_post(
        format!("{host}/GetQuotes"),
        jdata(q("NSE", "1594"), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!((status, &v["stat"]), (429, &json!("Not_Ok")));
    ctl.clear();
    ctl.inject(Fault::Reject403, None);
    let (_, v) = raw_post(
        format!("{host}/Limits"),
        jdata(q("NSE", "1594"), Some("sim_access_token")),
        None,
    )
    .await;
    assert_eq!(v["emsg"], "Session Expired :  Invalid Session Key");
    assert_eq!(ctl.stats().quote_requests, 5);
    sim.shutdown().await;
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn masters_zipped_and_plain() {
    let sim = start().await;
    let root = sim.instruments_url_for(SimBroker::Shoonya);
    assert_eq!(root, sim.instruments_url_for(SimBroker::Flattrade));
    let mut total = 0;
    for exch in sim::NOREN_EXCHANGES {
        let r = reqwest::get(format!("{root}{exch}_symbols.txt.zip"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        assert_eq!(z.len(), 1);
        let mut f = z.by_index(0).unwrap();
        assert_eq!(f.name(), format!("{exch}_symbols.txt"));
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        let plain = reqwest::get(format!("{root}{exch}_symbols.txt"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, plain);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("Exchange,Token,LotSize,Symbol,TradingSymbol,"));
        let cols = header.split(',').count();
        for l in lines {
            assert_eq!(l.split(',').count(), cols, "{l}");
            assert!(l.starts_with(&format!("{exch},")) && l.ends_with(','));
            total += 1;
        }
    }
    assert_eq!(total, 187, "every row of the sample, once");
    let nse = reqwest::get(format!("{root}NSE_symbols.txt"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(nse.contains("\nNSE,26009,1,BANKNIFTY,Nifty Bank,INDEX,0.05,\n"));
    assert_eq!(
        reqwest::get(format!("{root}XYZ_symbols.txt.zip"))
            .await
            .unwrap()
            .status(),
        404
    );
    sim.shutdown().await;
}
