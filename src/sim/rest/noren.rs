//! NorenOMS REST (Shoonya `/NorenWClientTP/`, Flattrade `/PiConnectAPI/`): `Limits` (the
//! token check), `GetQuotes` (REST fallback), `UserDetails`, and the per-exchange masters.
//!
//! Bodies are raw `jData={json}&jKey=<token>` (the JSON is not URL-encoded; a URL-encoded
//! body is accepted too), or `jData={json}` with `Authorization: Bearer <token>` (the OAuth
//! build). Answers are HTTP 200 with `stat` `Ok` / `Not_Ok` (the status lives in the body);
//! a bad token is `{"stat":"Not_Ok","emsg":"Session Expired :  Invalid Session Key"}`, the
//! 429 fault is HTTP 429 with a `Not_Ok` body. Every value is a string.

use super::{ist_fmt, master_gate};
use crate::adapters::noren::codec as nc;
use crate::model::{FeedKey, Level, Mode, Price};
use crate::sim::instruments::Family;
use crate::sim::server::strip_bearer;
use crate::sim::{NOREN_EXCHANGES, Shared, lock, masters, now_secs};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::atomic::Ordering;

/// The REST answer to a bad session token.
pub(crate) const SESSION_EXPIRED: &str = "Session Expired :  Invalid Session Key";

fn not_ok(status: StatusCode, emsg: &str) -> Response {
    let body = json!({"stat": "Not_Ok", "request_time": request_time(), "emsg": emsg});
    (status, axum::Json(body)).into_response()
}

fn request_time() -> String {
    ist_fmt(now_secs(), "%H:%M:%S %d-%m-%Y")
}

/// `(jData, jKey)` of a raw body: split on `jData=` / `&jKey=`; a body that does not parse
/// that way is tried as a URL-encoded form.
fn split_body(body: &str) -> (Option<String>, Option<String>) {
    if let Some(rest) = body.trim().strip_prefix("jData=") {
        let (j, k) = match rest.rsplit_once("&jKey=") {
            Some((j, k)) => (j, Some(k.trim().to_string())),
            None => (rest, None),
        };
        if serde_json::from_str::<Value>(j).is_ok() {
            return (Some(j.to_string()), k);
        }
    }
    let (mut j, mut k) = (None, None);
    for (name, v) in url::form_urlencoded::parse(body.as_bytes()) {
        match &*name {
            "jData" => j = Some(v.into_owned()),
            "jKey" => k = Some(v.into_owned()),
            _ => {}
        }
    }
    (j, k)
}

/// Route one request under a Noren prefix.
pub(super) fn handle(
    s: &Shared,
    method: &Method,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let c = &s.counters;
    c.rest_requests.fetch_add(1, Ordering::Relaxed);
    if route == "GetQuotes" {
        c.quote_requests.fetch_add(1, Ordering::Relaxed);
    }
    let flags = s.faults.flags();
    if flags.reject429 {
        c.rejected_limit.fetch_add(1, Ordering::Relaxed);
        return not_ok(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    }
    if method != Method::POST {
        return not_ok(StatusCode::METHOD_NOT_ALLOWED, "Invalid Request: use POST");
    }
    let text = String::from_utf8_lossy(body);
    let (jdata, jkey) = split_body(&text);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| strip_bearer(v).to_string());
    let token = jkey.or(bearer);
    if flags.reject403 || token.as_deref() != Some(s.access_token.as_str()) {
        s.count_rejected_auth();
        return not_ok(StatusCode::OK, SESSION_EXPIRED);
    }
    let Some(Value::Object(j)) = jdata.and_then(|j| serde_json::from_str(&j).ok()) else {
        return not_ok(StatusCode::OK, "Invalid Input : jData is Missing.");
    };
    match route {
        "Limits" => limits(s),
        "UserDetails" => user_details(s),
        "GetQuotes" => quotes(s, &j),
        _ => not_ok(StatusCode::NOT_FOUND, "Invalid Request: unknown route"),
    }
}

fn limits(s: &Shared) -> Response {
    axum::Json(json!({
        "request_time": request_time(),
        "stat": "Ok",
        "actid": s.client_code,
        "prfname": "SIM",
        "cash": "100000.00",
        "payin": "0.00",
        "payout": "0.00",
        "brkcollamt": "0.00",
        "unclearedcash": "0.00",
        "daycash": "0.00",
        "marginused": "0.00",
    }))
    .into_response()
}

fn user_details(s: &Shared) -> Response {
    axum::Json(json!({
        "request_time": request_time(),
        "stat": "Ok",
        "uname": "Simulator",
        "actid": s.client_code,
        "email": "sim@example.com",
        "brkname": "SIM",
        "exarr": NOREN_EXCHANGES,
        "prarr": [{"prd": "C", "s_prdt_ali": "CNC"}, {"prd": "I", "s_prdt_ali": "MIS"}],
    }))
    .into_response()
}

/// `GetQuotes` with `jData={"uid","exch","token"}`: one scrip, every field a string.
fn quotes(s: &Shared, j: &Map<String, Value>) -> Response {
    let field = |k: &str| j.get(k).and_then(Value::as_str);
    let (Some(exch), Some(tok)) = (field("exch"), field("token")) else {
        return not_ok(StatusCode::OK, "Invalid Input : exch or token is Missing.");
    };
    let key = nc::seg_of(exch).zip(tok.parse::<u32>().ok());
    let market = key.and_then(|(seg, token)| {
        s.instruments
            .market_token(Family::Noren, FeedKey { seg, token })
    });
    let (Some((seg, _)), Some(market)) = (key, market) else {
        return not_ok(StatusCode::OK, "Error Occurred : 5 \"no data\"");
    };
    let pp = nc::default_precision(seg);
    let f = |p: Price| nc::format_price(p, pp);
    let mut m = lock(&s.market);
    let Some(st) = m.state(&s.instruments, market) else {
        return not_ok(StatusCode::OK, "Error Occurred : 5 \"no data\"");
    };
    st.step();
    let secs = now_secs();
    let t = st.tick(Mode::Depth, secs);
    let (lc, uc) = st.circuits();
    drop(m);
    let q = t.quote.unwrap_or_default();
    let params = s.instruments.params(market);
    let row = s.instruments.row(market);
    let cash = matches!(exch, "NSE" | "BSE");
    let mut o = Map::new();
    let mut put = |k: &str, v: String| {
        o.insert(k.into(), Value::String(v));
    };
    put("stat", "Ok".into());
    put("request_time", request_time());
    put("exch", exch.into());
    put("tsym", masters::symbol_of(&s.instruments, market, false));
    put("cname", row.map_or_else(String::new, |r| r.name.clone()));
    put("symname", row.map_or_else(String::new, masters::short_name));
    put("seg", if cash { "EQT" } else { "DER" }.into());
    put(
        "instname",
        masters::noren_instrument(&s.instruments, market),
    );
    put("isin", String::new());
    put("pp", pp.to_string());
    put("ls", params.map_or(1, |p| p.lot).to_string());
    put("ti", params.map_or_else(String::new, |p| f(Price(p.tick))));
    put("mult", "1".into());
    put("uc", f(uc));
    put("lc", f(lc));
    put("prcftr_d", "(1 / 1 ) * (1 / 1)".into());
    put("token", tok.into());
    put("lp", f(t.ltp));
    put("o", f(q.ohlc.open));
    put("h", f(q.ohlc.high));
    put("l", f(q.ohlc.low));
    put("c", f(q.ohlc.close));
    put("ap", f(q.average_price));
    put("v", q.volume.to_string());
    put("ltq", q.last_quantity.to_string());
    put(
        "ltt",
        ist_fmt(q.last_trade_time.unwrap_or(secs), "%H:%M:%S"),
    );
    put("tbq", q.total_buy_quantity.to_string());
    put("tsq", q.total_sell_quantity.to_string());
    put("oi", q.oi.to_string());
    let d = t.depth.unwrap_or_default();
    for (side, levels) in [('b', &d.buy), ('s', &d.sell)] {
        for (i, l) in levels.iter().enumerate() {
            let l: &Level = l;
            put(&format!("{side}p{}", i + 1), f(l.price));
            put(&format!("{side}q{}", i + 1), l.quantity.to_string());
            put(&format!("{side}o{}", i + 1), l.orders.to_string());
        }
    }
    axum::Json(Value::Object(o)).into_response()
}

/// `GET /{EXCH}_symbols.txt[.zip]` (no session needed; unknown exchanges are 404).
pub(super) fn master(s: &Shared, exchange: &str, zipped: bool) -> Response {
    let Some(i) = NOREN_EXCHANGES.iter().position(|e| *e == exchange) else {
        return (StatusCode::NOT_FOUND, "no such master").into_response();
    };
    if let Some(r) = master_gate(s) {
        return r;
    }
    let built = s.masters.noren[i].get_or_init(|| {
        let csv = masters::noren_master(&s.instruments, exchange).unwrap_or_default();
        let name = format!("{exchange}_symbols.txt");
        let zip = masters::zip_one(&name, &csv).unwrap_or_default();
        (csv, zip)
    });
    if zipped {
        ([(header::CONTENT_TYPE, "application/zip")], built.1.clone()).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain")], built.0.clone()).into_response()
    }
}
