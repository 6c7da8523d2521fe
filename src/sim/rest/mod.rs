//! The simulator's HTTP listener: each broker's REST endpoints and instrument masters, and
//! the `/sim` fault-control API, served by axum.
//!
//! Kite's routes are axum routes; every other path goes through [`dispatch`], which first
//! collapses repeated slashes (Noren's clients send `/NorenWClientTP//GetQuotes`) and then
//! routes Angel (`/rest/secure/angelbroking/...`, `/OpenAPI_File/files/...`), Noren
//! (`/NorenWClientTP/`, `/PiConnectAPI/`, `/PiConnectTP/`) and the Noren masters
//! (`/{EXCH}_symbols.txt.zip`, `/{EXCH}_symbols.txt`).

mod angel;
mod kite;
mod noren;

use super::faults::{self, Fault};
use super::{Shared, stopped};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

type S = State<Arc<Shared>>;

/// Serve until the stop flag is set.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/user/profile", get(kite::profile))
        .route("/quote", get(kite::quote_full))
        .route("/quote/ltp", get(kite::quote_ltp))
        .route("/quote/ohlc", get(kite::quote_ohlc))
        .route("/instruments", get(kite::instruments))
        .route("/sim/faults", post(add_fault).delete(clear_faults))
        .route("/sim/state", get(state))
        .route("/sim/tick_rate", post(set_tick_rate))
        .fallback(dispatch)
        .with_state(shared);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        stopped(&mut stop).await;
    });
    if let Err(e) = serve.await {
        tracing::warn!(error = %e, "simulator REST server failed");
    }
}

fn raw_json(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `path` with runs of `/` collapsed and no trailing `/`.
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    out
}

/// Every path that is not a Kite or `/sim` route.
async fn dispatch(
    State(s): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = normalise(uri.path());
    if let Some(route) = path.strip_prefix("/rest/secure/angelbroking/") {
        return angel::handle(&s, &method, route, &headers, &body);
    }
    if path == "/OpenAPI_File/files/OpenAPIScripMaster.json" {
        return angel::master(&s);
    }
    for prefix in ["/NorenWClientTP/", "/PiConnectAPI/", "/PiConnectTP/"] {
        if let Some(route) = path.strip_prefix(prefix) {
            return noren::handle(&s, &method, route, &headers, &body);
        }
    }
    if let Some(file) = path.strip_prefix('/') {
        let (name, zipped) = match file.strip_suffix(".zip") {
            Some(n) => (n, true),
            None => (file, false),
        };
        if let Some(exch) = name.strip_suffix("_symbols.txt") {
            if method == Method::GET {
                return noren::master(&s, exch, zipped);
            }
        }
    }
    not_found().await
}

/// Master files honour the 429 / 403 faults like Kite's `/instruments` (no session needed).
fn master_gate(s: &Shared) -> Option<Response> {
    let c = &s.counters;
    c.rest_requests.fetch_add(1, Ordering::Relaxed);
    let flags = s.faults.flags();
    if flags.reject429 {
        c.rejected_limit.fetch_add(1, Ordering::Relaxed);
        return Some((StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response());
    }
    if flags.reject403 {
        c.rejected_auth.fetch_add(1, Ordering::Relaxed);
        return Some((StatusCode::FORBIDDEN, "Forbidden").into_response());
    }
    None
}

/// IST wall-clock text of Unix seconds in a chrono format.
fn ist_fmt(secs: i64, fmt: &str) -> String {
    chrono::DateTime::from_timestamp(secs + 19_800, 0)
        .map(|d| d.naive_utc().format(fmt).to_string())
        .unwrap_or_default()
}

async fn not_found() -> Response {
    kite::error(StatusCode::NOT_FOUND, "GeneralException", "Route not found")
}

// The /sim API answers plain JSON (no Kite envelope) so scripts can use it directly.
fn bad(msg: impl std::fmt::Display) -> Response {
    let body = json!({"error": msg.to_string()});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn plain(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// `POST /sim/faults` with the fault JSON plus optional `"seconds"`.
async fn add_fault(State(s): S, body: Bytes) -> Response {
    let mut v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format_args!("body is not JSON: {e}")),
    };
    let secs = v.as_object_mut().and_then(|o| o.remove("seconds"));
    let duration = match &secs {
        None | Some(Value::Null) => None,
        Some(x) => match x.as_f64().and_then(|f| Duration::try_from_secs_f64(f).ok()) {
            Some(d) => Some(d),
            None => return bad("\"seconds\" must be a non-negative number"),
        },
    };
    let fault: Fault = match serde_json::from_value(v) {
        Ok(f) => f,
        Err(e) => return bad(format_args!("unknown fault: {e}")),
    };
    faults::inject(&s, fault.clone(), duration);
    plain(json!({"injected": fault, "seconds": secs}))
}

/// `DELETE /sim/faults`: clear every persistent fault.
async fn clear_faults(State(s): S) -> Response {
    s.faults.clear();
    plain(json!({"cleared": true}))
}

/// `GET /sim/state`: [`super::SimStats`] plus `faults` and `tick_rate`.
async fn state(State(s): S) -> Response {
    let mut v = serde_json::to_value(s.stats()).unwrap_or_else(|_| json!({}));
    let active: Vec<Value> = s
        .faults
        .active()
        .into_iter()
        .map(|(f, left)| {
            let mut fv = serde_json::to_value(f).unwrap_or(Value::Null);
            if let Some(o) = fv.as_object_mut() {
                o.insert(
                    "remaining_seconds".into(),
                    json!(left.map(|d| d.as_secs_f64())),
                );
            }
            fv
        })
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("faults".into(), Value::Array(active));
        o.insert(
            "tick_rate".into(),
            json!(s.tick_rate.load(Ordering::Relaxed)),
        );
    }
    plain(v)
}

/// `POST /sim/tick_rate` with `{"ticks_per_sec": N}`.
async fn set_tick_rate(State(s): S, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(n) = v
        .get("ticks_per_sec")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
    else {
        return bad("expected {\"ticks_per_sec\": <u32>}");
    };
    s.tick_rate.store(n, Ordering::Relaxed);
    plain(json!({"ticks_per_sec": n}))
}
