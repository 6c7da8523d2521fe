//! Kite REST: profile (token check), quotes (REST fallback) and the instrument master.

use super::{S, raw_json};
use crate::model::{Level, Mode, Price, Tick};
use crate::sim::server::{TOKEN_EXCEPTION, TOO_MANY};
use crate::sim::{Shared, lock, now_secs};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::atomic::Ordering;

pub(super) fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = json!({"status":"error","message":message,"data":null,"error_type":error_type});
    (status, axum::Json(body)).into_response()
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status":"success","data":data})).into_response()
}

/// Fault gate for the Kite endpoints (429/403 faults), then the `Authorization` header.
/// `Some` = the rejection to answer with.
fn gate(s: &Shared, headers: &HeaderMap, need_auth: bool) -> Option<Response> {
    let c = &s.counters;
    c.rest_requests.fetch_add(1, Ordering::Relaxed);
    let flags = s.faults.flags();
    if flags.reject429 {
        c.rejected_limit.fetch_add(1, Ordering::Relaxed);
        return Some(raw_json(StatusCode::TOO_MANY_REQUESTS, TOO_MANY));
    }
    let ok = !need_auth
        || headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("token "))
            .and_then(|v| v.trim().split_once(':'))
            .is_some_and(|(k, t)| k == s.api_key && t == s.access_token);
    if flags.reject403 || !ok {
        c.rejected_auth.fetch_add(1, Ordering::Relaxed);
        return Some(raw_json(StatusCode::FORBIDDEN, TOKEN_EXCEPTION));
    }
    None
}

pub(super) async fn profile(State(s): S, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&s, &headers, true) {
        return r;
    }
    success(json!({
        "user_id": "SIM001",
        "user_type": "individual",
        "email": "sim@example.com",
        "user_name": "Simulator",
        "user_shortname": "Sim",
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BSE", "CDS", "MCX"],
        "products": ["CNC", "NRML", "MIS"],
        "order_types": ["MARKET", "LIMIT"],
        "avatar_url": null,
        "meta": {"demat_consent": "physical"}
    }))
}

pub(super) async fn instruments(State(s): S, headers: HeaderMap) -> Response {
    // Kite serves the master without a session; only the 403/429 faults apply.
    if let Some(r) = gate(&s, &headers, false) {
        return r;
    }
    let body = s.instruments.csv().to_string();
    ([(header::CONTENT_TYPE, "text/csv")], body).into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ltp,
    Ohlc,
    Full,
}

pub(super) async fn quote_ltp(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    quotes(&s, &headers, q, Kind::Ltp)
}

pub(super) async fn quote_ohlc(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    quotes(&s, &headers, q, Kind::Ohlc)
}

pub(super) async fn quote_full(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    quotes(&s, &headers, q, Kind::Full)
}

/// Kite's REST timestamps: `yyyy-mm-dd hh:mm:ss` in IST (UTC+05:30, no DST).
pub(super) fn ist(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs + 19_800, 0)
        .map(|d| d.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(super) fn p(x: Price) -> Value {
    json!(x.to_f64())
}

fn levels(ls: &[Level; 5]) -> Value {
    ls.iter()
        .map(|l| json!({"price": p(l.price), "quantity": l.quantity, "orders": l.orders}))
        .collect()
}

fn quote_json(kind: Kind, t: &Tick, circuits: (Price, Price), secs: i64) -> Value {
    let token = t.key.token;
    if kind == Kind::Ltp {
        return json!({"instrument_token": token, "last_price": p(t.ltp)});
    }
    let q = t.quote.unwrap_or_default();
    let ohlc = json!({
        "open": p(q.ohlc.open), "high": p(q.ohlc.high),
        "low": p(q.ohlc.low), "close": p(q.ohlc.close),
    });
    if kind == Kind::Ohlc {
        return json!({"instrument_token": token, "last_price": p(t.ltp), "ohlc": ohlc});
    }
    let d = t.depth.unwrap_or_default();
    json!({
        "instrument_token": token,
        "timestamp": ist(secs),
        "last_trade_time": ist(q.last_trade_time.unwrap_or(secs)),
        "last_price": p(t.ltp),
        "last_quantity": q.last_quantity,
        "buy_quantity": q.total_buy_quantity,
        "sell_quantity": q.total_sell_quantity,
        "volume": q.volume,
        "average_price": p(q.average_price),
        "oi": q.oi,
        "oi_day_high": q.oi_day_high,
        "oi_day_low": q.oi_day_low,
        "net_change": Price(t.ltp.0 - q.ohlc.close.0).to_f64(),
        "lower_circuit_limit": p(circuits.0),
        "upper_circuit_limit": p(circuits.1),
        "ohlc": ohlc,
        "depth": {"buy": levels(&d.buy), "sell": levels(&d.sell)},
    })
}

/// `GET /quote[/ltp|/ohlc]?i=EXCHANGE:SYMBOL&i=...`; unknown instruments are left out.
fn quotes(s: &Shared, headers: &HeaderMap, q: Option<String>, kind: Kind) -> Response {
    // Counted before the gate: rejected attempts matter when checking a client's pacing.
    s.counters.quote_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = gate(s, headers, true) {
        return r;
    }
    let query = q.unwrap_or_default();
    // Repeated `i` keys: parse the raw query (axum's Query cannot).
    let keys: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "i")
        .map(|(_, v)| v.into_owned())
        .collect();
    let limit = if kind == Kind::Full { 500 } else { 1000 };
    if keys.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "InputException",
            "No instruments specified.",
        );
    }
    if keys.len() > limit {
        let msg = format!("Too many instruments: at most {limit} per request.");
        return error(StatusCode::BAD_REQUEST, "InputException", &msg);
    }
    let secs = now_secs();
    let mut data = Map::new();
    let mut market = lock(&s.market);
    for key in keys {
        if data.contains_key(&key) {
            continue;
        }
        let Some(token) = s.instruments.resolve(&key) else {
            continue;
        };
        let Some(st) = market.state(&s.instruments, token) else {
            continue;
        };
        st.step();
        let t = st.tick(Mode::Depth, secs);
        data.insert(key, quote_json(kind, &t, st.circuits(), secs));
    }
    success(Value::Object(data))
}
