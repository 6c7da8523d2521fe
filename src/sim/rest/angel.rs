//! Angel One SmartAPI REST: `user/v1/getProfile` (the token check), `market/v1/quote` and
//! `order/v1/getLtpData` (REST fallback), and `OpenAPIScripMaster.json`.
//!
//! Envelope `{"status":true,"message":"SUCCESS","errorcode":"","data":..}`; a missing or
//! wrong JWT (`Authorization: Bearer <jwt>`, the prefix optional) is HTTP 401 with
//! `{"status":false,"message":"Invalid Token","errorcode":"AG8001","data":null}`; a present
//! but wrong `X-PrivateKey` is 401 "Invalid API Key" / `AG8004` (the simulator's code; Angel
//! documents none). Malformed requests are 400 with the simulator's own `AB4000`. The query
//! string (the SDK puts its JSON params there) is ignored.

use super::{ist_fmt, master_gate};
use crate::adapters::angel::codec as ac;
use crate::model::{Level, Mode, Price};
use crate::sim::instruments::Family;
use crate::sim::server::strip_bearer;
use crate::sim::{Shared, lock, masters, now_secs};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// Tokens per `market/v1/quote` request.
const MAX_QUOTE_TOKENS: usize = 50;

fn fail(status: StatusCode, message: &str, code: &str) -> Response {
    let body = json!({"status": false, "message": message, "errorcode": code, "data": null});
    (status, axum::Json(body)).into_response()
}

fn ok(data: Value) -> Response {
    axum::Json(json!({"status": true, "message": "SUCCESS", "errorcode": "", "data": data}))
        .into_response()
}

/// Faults, then the JWT and the API key. `Some` = the answer.
fn gate(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let c = &s.counters;
    c.rest_requests.fetch_add(1, Ordering::Relaxed);
    let flags = s.faults.flags();
    if flags.reject429 {
        c.rejected_limit.fetch_add(1, Ordering::Relaxed);
        let m = "Access denied because of exceeding access rate";
        return Some(fail(StatusCode::TOO_MANY_REQUESTS, m, ""));
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let jwt_ok =
        h(header::AUTHORIZATION.as_str()).is_some_and(|v| strip_bearer(v) == s.access_token);
    if flags.reject403 || !jwt_ok {
        s.count_rejected_auth();
        return Some(fail(StatusCode::UNAUTHORIZED, "Invalid Token", "AG8001"));
    }
    if h("x-privatekey").is_some_and(|k| k.trim() != s.api_key) {
        s.count_rejected_auth();
        return Some(fail(StatusCode::UNAUTHORIZED, "Invalid API Key", "AG8004"));
    }
    None
}

/// Route one `/rest/secure/angelbroking/<route>` request.
pub(super) fn handle(
    s: &Shared,
    method: &Method,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let quote = matches!(route, "market/v1/quote" | "order/v1/getLtpData");
    if quote {
        s.counters.quote_requests.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(r) = gate(s, headers) {
        return r;
    }
    match (method.as_str(), route) {
        ("GET", "user/v1/getProfile") => profile(s),
        ("POST", "market/v1/quote") => quotes(s, body),
        ("POST", "order/v1/getLtpData") => ltp_data(s, body),
        _ => fail(StatusCode::NOT_FOUND, "Route not found", "AB4000"),
    }
}

fn profile(s: &Shared) -> Response {
    ok(json!({
        "clientcode": s.client_code,
        "name": "Simulator",
        "email": "sim@example.com",
        "mobileno": "",
        "exchanges": ["nse_cm", "nse_fo", "bse_cm", "bse_fo", "mcx_fo", "cde_fo"],
        "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"],
        "lastlogintime": "",
        "brokerid": "B2C",
    }))
}

fn px(p: Price) -> Value {
    json!(p.to_f64())
}

fn depth(ls: &[Level; 5]) -> Value {
    ls.iter()
        .map(|l| json!({"price": px(l.price), "quantity": l.quantity, "orders": l.orders}))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ltp,
    Ohlc,
    Full,
}

/// One quote for (exchange, token), or `None` when the instrument is unknown.
fn quote(s: &Shared, exch: &str, token: &str, kind: Kind) -> Option<Value> {
    let et = ac::exchange_type(exch)?;
    let key = crate::model::FeedKey {
        seg: u16::from(et),
        token: ac::AngelToken::new(token)?.number()?,
    };
    let market = s.instruments.market_token(Family::Angel, key)?;
    let mut m = lock(&s.market);
    let st = m.state(&s.instruments, market)?;
    st.step();
    let secs = now_secs();
    let t = st.tick(Mode::Depth, secs);
    let q = t.quote.unwrap_or_default();
    let mut v = json!({
        "exchange": ac::exchange_name(et).unwrap_or(exch),
        "tradingSymbol": masters::symbol_of(&s.instruments, market, true),
        "symbolToken": token,
        "ltp": px(t.ltp),
    });
    let o = v.as_object_mut()?;
    if kind != Kind::Ltp {
        o.insert("open".into(), px(q.ohlc.open));
        o.insert("high".into(), px(q.ohlc.high));
        o.insert("low".into(), px(q.ohlc.low));
        o.insert("close".into(), px(q.ohlc.close));
    }
    if kind == Kind::Full {
        let (lc, uc) = st.circuits();
        let (low52, high52) = st.week52();
        let d = t.depth.unwrap_or_default();
        let net = Price(t.ltp.0 - q.ohlc.close.0);
        let time = ist_fmt(secs, "%d-%b-%Y %H:%M:%S");
        for (k, val) in [
            ("lastTradeQty", json!(q.last_quantity)),
            ("exchFeedTime", json!(time)),
            ("exchTradeTime", json!(time)),
            ("netChange", px(net)),
            ("percentChange", json!((q.change * 100.0).round() / 100.0)),
            ("avgPrice", px(q.average_price)),
            ("tradeVolume", json!(q.volume)),
            ("opnInterest", json!(q.oi)),
            ("lowerCircuit", px(lc)),
            ("upperCircuit", px(uc)),
            ("totBuyQuan", json!(q.total_buy_quantity)),
            ("totSellQuan", json!(q.total_sell_quantity)),
            ("52WeekLow", px(low52)),
            ("52WeekHigh", px(high52)),
            (
                "depth",
                json!({"buy": depth(&d.buy), "sell": depth(&d.sell)}),
            ),
        ] {
            o.insert(k.into(), val);
        }
    }
    Some(v)
}

/// `POST market/v1/quote` with `{"mode":"LTP"|"OHLC"|"FULL","exchangeTokens":{"NSE":[..]}}`.
fn quotes(s: &Shared, body: &[u8]) -> Response {
    let bad = |m: &str| fail(StatusCode::BAD_REQUEST, m, "AB4000");
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad("Invalid Request Payload: body is not JSON");
    };
    let kind = match v
        .get("mode")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
    {
        Some(m) if m == "LTP" => Kind::Ltp,
        Some(m) if m == "OHLC" => Kind::Ohlc,
        Some(m) if m == "FULL" => Kind::Full,
        _ => return bad("Invalid Request Payload: mode must be LTP, OHLC or FULL"),
    };
    let Some(groups) = v.get("exchangeTokens").and_then(Value::as_object) else {
        return bad("Invalid Request Payload: exchangeTokens must be an object");
    };
    let mut wanted = Vec::new();
    for (exch, toks) in groups {
        let Some(list) = toks.as_array() else {
            return bad("Invalid Request Payload: tokens must be a list");
        };
        for t in list {
            let Some(t) = t.as_str() else {
                return bad("Invalid Request Payload: tokens must be strings");
            };
            wanted.push((exch.clone(), t.to_string()));
        }
    }
    if wanted.len() > MAX_QUOTE_TOKENS {
        return bad("Exceeded the limit of 50 tokens per request");
    }
    let (mut fetched, mut unfetched) = (Vec::new(), Vec::new());
    for (exch, token) in wanted {
        match quote(s, &exch, &token, kind) {
            Some(q) => fetched.push(q),
            None => unfetched.push(json!({
                "exchange": exch,
                "symbolToken": token,
                "message": "Symbol Not Found",
                "errorCode": "AB1009",
            })),
        }
    }
    ok(json!({"fetched": fetched, "unfetched": unfetched}))
}

/// `POST order/v1/getLtpData` with `{"exchange","tradingsymbol","symboltoken"}`.
fn ltp_data(s: &Shared, body: &[u8]) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    let (Some(exch), Some(token)) = (field("exchange"), field("symboltoken")) else {
        return fail(StatusCode::BAD_REQUEST, "Invalid Request Payload", "AB4000");
    };
    match quote(s, exch, token, Kind::Ohlc) {
        Some(q) => ok(json!({
            "exchange": q["exchange"],
            "tradingsymbol": q["tradingSymbol"],
            "symboltoken": token,
            "open": q["open"],
            "high": q["high"],
            "low": q["low"],
            "close": q["close"],
            "ltp": q["ltp"],
        })),
        None => fail(StatusCode::OK, "Symbol Not Found", "AB1009"),
    }
}

/// `GET /OpenAPI_File/files/OpenAPIScripMaster.json` (no session needed).
pub(super) fn master(s: &Shared) -> Response {
    if let Some(r) = master_gate(s) {
        return r;
    }
    let body = s
        .masters
        .angel
        .get_or_init(|| masters::angel_master(&s.instruments))
        .clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
