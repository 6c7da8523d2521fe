//! Beyond OpenAlgo: `connection_status` (after authentication and on every engine state
//! change) and the periodic `heartbeat`, both carrying the engine's one health snapshot, so a
//! strategy can tell "quiet market" from "dead feed" (OpenAlgo's `adapter_status` cannot).

use super::ProxyStats;
use crate::engine::health::{Health, TransportMode};
use serde_json::{Value, json};

/// The health fields a client needs, as a JSON object.
fn health_fields(h: &Health) -> Value {
    json!({
        "broker": h.broker,
        "state": h.state.as_str(),
        "transport": h.transport,
        "rest_fallback": h.transport == TransportMode::RestPolling,
        "quality": h.quality,
        "quality_pct": h.quality_pct,
        "last_tick_age_ms": h.last_tick_age_ms,
        "ticks_per_sec": h.ticks_per_sec,
        "backoff": h.backoff.map(|b| json!({
            "attempt": b.attempt,
            "max": b.max,
            "delay_ms": b.delay_ms,
            "next_in_ms": b.next_in_ms,
            "next_at": b.next_at_unix_ms,
        })),
        "reconnects": h.reconnects,
        "last_error": h.last_error.as_ref().map(|e| json!({"kind": e.kind, "text": e.text})),
        "upstream_connections": h.upstream_connections,
        "market_open": h.market_open,
        "subscriptions": {"desired": h.desired, "applied": h.applied},
    })
}

fn message(kind: &str, h: &Health, now_ms: i64, extra: &[(&str, Value)]) -> String {
    let mut v = json!({"type": kind, "status": "success", "timestamp": now_ms});
    if let (Value::Object(o), Value::Object(f)) = (&mut v, health_fields(h)) {
        o.extend(f);
        for (k, x) in extra {
            o.insert((*k).to_string(), x.clone());
        }
    }
    v.to_string()
}

/// `{"type":"connection_status",...}`.
pub fn connection_status(h: &Health, now_ms: i64) -> String {
    message("connection_status", h, now_ms, &[])
}

/// `{"type":"heartbeat",...}`, with this client's own counters.
pub fn heartbeat(
    h: &Health,
    now_ms: i64,
    subscriptions: usize,
    dropped: u64,
    stats: &ProxyStats,
) -> String {
    message(
        "heartbeat",
        h,
        now_ms,
        &[
            (
                "client",
                json!({"subscriptions": subscriptions, "dropped": dropped}),
            ),
            ("clients", json!(stats.authenticated())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineState;
    use crate::engine::health::BackoffInfo;

    #[test]
    fn status_and_heartbeat_carry_the_health_snapshot() {
        let h = Health {
            broker: "kite".into(),
            state: EngineState::Backoff,
            backoff: Some(BackoffInfo {
                attempt: 3,
                max: 10,
                delay_ms: 4000,
                next_in_ms: 4200,
                next_at_unix_ms: 9,
            }),
            last_tick_age_ms: Some(31_000),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&connection_status(&h, 5)).unwrap();
        assert_eq!(v["type"], "connection_status");
        assert_eq!(v["state"], "backoff");
        assert_eq!(v["backoff"]["attempt"], 3);
        assert_eq!(v["rest_fallback"], false);
        assert_eq!(v["last_tick_age_ms"], 31_000);
        let v: Value =
            serde_json::from_str(&heartbeat(&h, 5, 7, 2, &ProxyStats::default())).unwrap();
        assert_eq!(v["type"], "heartbeat");
        assert_eq!(v["client"]["subscriptions"], 7);
        assert_eq!(v["quality"], "EXCELLENT");
    }
}
