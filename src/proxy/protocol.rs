//! The OpenAlgo client protocol (openalgo.md §1), pure: one client text frame → a [`Request`]
//! or an OpenAlgo-style [`ProtoError`], and the reply envelopes. No I/O, no engine.
//!
//! Where OpenAlgo's server has a bug we do the right thing and stay wire-compatible:
//! - unsubscribe resolves the mode per item → top-level `mode` → Quote (OpenAlgo ignores a
//!   top-level mode in the bulk form);
//! - a bulk item without `symbol` / `exchange` is reported as a failed item (OpenAlgo skips it
//!   silently);
//! - JSON that is not an object gets `INVALID_JSON` with a plain message (OpenAlgo answers
//!   `SERVER_ERROR` with a Python exception text).

use crate::model::Mode;
use serde_json::{Map, Value, json};

/// An OpenAlgo error reply: `{"status":"error","code":..,"message":..}` (no `type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// OpenAlgo error code (`INVALID_JSON`, `INVALID_ACTION`, `INVALID_MODE`, ...).
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

impl ProtoError {
    /// An error with this code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> ProtoError {
        ProtoError {
            code,
            message: message.into(),
        }
    }

    /// The JSON reply.
    pub fn to_json(&self) -> String {
        json!({"status": "error", "code": self.code, "message": self.message}).to_string()
    }
}

/// A symbol as the client names it (OpenAlgo symbology: `RELIANCE` on `NSE`, `NIFTY` on
/// `NSE_INDEX`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SymbolRef {
    /// Symbol as sent (trimmed).
    pub symbol: String,
    /// Exchange as sent (trimmed, upper case).
    pub exchange: String,
}

/// One item of a subscribe or unsubscribe: the symbol, or why the item is unusable.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The symbol (empty strings when missing).
    pub sym: SymbolRef,
    /// The item's mode (subscribe: the request's; unsubscribe: item → top level → Quote), or
    /// why the item was refused before any lookup.
    pub mode: Result<Mode, String>,
}

/// A parsed client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `authenticate` / `auth` with `api_key` or `apikey` (None when missing).
    Auth(Option<String>),
    /// `subscribe`.
    Subscribe {
        /// Items in request order.
        items: Vec<Item>,
        /// Requested depth levels (`depth`, default 5).
        depth: u64,
        /// Echoed in the reply when present.
        request_id: Option<Value>,
    },
    /// `unsubscribe` (bulk or single form).
    Unsubscribe {
        /// Items in request order.
        items: Vec<Item>,
        /// Echoed in the reply when present.
        request_id: Option<Value>,
    },
    /// `unsubscribe_all`, or `unsubscribe` with `unsubscribe_all: true`.
    UnsubscribeAll {
        /// Echoed in the reply when present.
        request_id: Option<Value>,
    },
    /// `subscribe_orders` / `unsubscribe_orders` (acknowledged; tickmux relays no orders).
    Orders {
        /// True for subscribe.
        subscribe: bool,
        /// Echoed in the reply when present.
        request_id: Option<Value>,
    },
    /// `get_broker_info`.
    BrokerInfo,
    /// `get_supported_brokers`.
    SupportedBrokers,
    /// `ping`, with the fields to echo.
    Ping {
        /// `timestamp`, echoed as `client_timestamp`.
        timestamp: Option<Value>,
        /// `_pingId`, echoed.
        ping_id: Option<Value>,
    },
}

impl Request {
    /// Whether the action needs an authenticated connection.
    pub fn needs_auth(&self) -> bool {
        !matches!(
            self,
            Request::Auth(_) | Request::Ping { .. } | Request::SupportedBrokers
        )
    }
}

/// Parse a mode as OpenAlgo does: int 1|2|3 or a case-insensitive `LTP` / `Quote` / `Depth`.
pub fn parse_mode(v: &Value) -> Result<Mode, String> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(1) => Ok(Mode::Ltp),
            Some(2) => Ok(Mode::Quote),
            Some(3) => Ok(Mode::Depth),
            _ => Err(format!(
                "Invalid mode {n}; expected 1 (LTP), 2 (Quote), or 3 (Depth)"
            )),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "ltp" => Ok(Mode::Ltp),
            "quote" => Ok(Mode::Quote),
            "depth" => Ok(Mode::Depth),
            _ => Err(format!(
                "Invalid mode '{s}'; expected 'LTP', 'Quote', or 'Depth' (case-insensitive)"
            )),
        },
        Value::Bool(b) => Err(format!(
            "Mode must be int or str, got bool ({})",
            if *b { "True" } else { "False" }
        )),
        Value::Number(n) => Err(format!("Mode must be int or str, got float ({n})")),
        Value::Null => Err("Mode must be int or str, got NoneType (None)".into()),
        Value::Array(_) => Err("Mode must be int or str, got list".into()),
        Value::Object(_) => Err("Mode must be int or str, got dict".into()),
    }
}

/// OpenAlgo's label for a mode, as used in acks (`"LTP"`, `"Quote"`, `"Depth"`).
pub fn mode_label(m: Mode) -> &'static str {
    match m {
        Mode::Ltp => "LTP",
        Mode::Quote => "Quote",
        Mode::Depth => "Depth",
    }
}

/// OpenAlgo's int for a mode.
pub fn mode_int(m: Mode) -> u8 {
    match m {
        Mode::Ltp => 1,
        Mode::Quote => 2,
        Mode::Depth => 3,
    }
}

fn text_field(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) => Some(s.trim().to_string()),
        // Numeric symbols (raw tokens) are fine too.
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn symbol_of(o: &Map<String, Value>) -> Result<SymbolRef, SymbolRef> {
    let symbol = text_field(o, "symbol").unwrap_or_default();
    let exchange = text_field(o, "exchange")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let s = SymbolRef { symbol, exchange };
    if s.symbol.is_empty() || s.exchange.is_empty() {
        Err(s)
    } else {
        Ok(s)
    }
}

const MISSING: &str = "Both symbol and exchange are required";

/// The items of a subscribe / unsubscribe: the bulk `symbols` list or the single form.
/// `item_mode` picks each item's mode from the item object.
fn items(
    o: &Map<String, Value>,
    item_mode: impl Fn(&Map<String, Value>) -> Result<Mode, String>,
) -> Result<Vec<Item>, ProtoError> {
    let single = || -> Result<Vec<Item>, ProtoError> {
        if o.contains_key("symbol") || o.contains_key("exchange") {
            let mode = item_mode(o);
            Ok(vec![match symbol_of(o) {
                Ok(sym) => Item { sym, mode },
                Err(sym) => Item {
                    sym,
                    mode: Err(MISSING.into()),
                },
            }])
        } else {
            Ok(Vec::new())
        }
    };
    match o.get("symbols") {
        None | Some(Value::Null) => single(),
        Some(Value::Array(list)) => Ok(list
            .iter()
            .map(|v| match v {
                Value::Object(io) => match symbol_of(io) {
                    Ok(sym) => Item {
                        sym,
                        mode: item_mode(io),
                    },
                    Err(sym) => Item {
                        sym,
                        mode: Err(MISSING.into()),
                    },
                },
                // "NSE:INFY" strings are a common slip; name what was expected.
                other => Item {
                    sym: SymbolRef {
                        symbol: match other {
                            Value::String(s) => s.clone(),
                            o => o.to_string(),
                        },
                        exchange: String::new(),
                    },
                    mode: Err("Each item must be an object {\"symbol\", \"exchange\"}".into()),
                },
            })
            .collect()),
        Some(_) => Err(ProtoError::new(
            "INVALID_PARAMETERS",
            "symbols must be a list of {\"symbol\", \"exchange\"} objects",
        )),
    }
}

fn request_id(o: &Map<String, Value>) -> Option<Value> {
    o.get("request_id").cloned()
}

/// Parse one client text frame.
pub fn parse(frame: &str) -> Result<Request, ProtoError> {
    let v: Value = serde_json::from_str(frame)
        .map_err(|_| ProtoError::new("INVALID_JSON", "Invalid JSON message"))?;
    let Value::Object(o) = v else {
        return Err(ProtoError::new(
            "INVALID_JSON",
            "Message must be a JSON object with an \"action\"",
        ));
    };
    // `type` is a synonym for `action` (the frontend's {"type":"unsubscribe_all"}).
    let action = match o.get("action").or_else(|| o.get("type")) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ProtoError::new("INVALID_ACTION", "Invalid action: None"));
        }
        Some(other) => {
            return Err(ProtoError::new(
                "INVALID_ACTION",
                format!("Invalid action: {other}"),
            ));
        }
    };
    match action.as_str() {
        "authenticate" | "auth" => {
            let key = ["api_key", "apikey"].iter().find_map(|k| match o.get(*k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            });
            Ok(Request::Auth(key))
        }
        "subscribe" => {
            let mode = match o.get("mode") {
                None | Some(Value::Null) => Mode::Quote,
                Some(m) => parse_mode(m).map_err(|e| ProtoError::new("INVALID_MODE", e))?,
            };
            let depth = match o.get("depth") {
                None | Some(Value::Null) => 5,
                Some(Value::Number(n)) if n.as_u64().is_some_and(|d| d > 0) => {
                    n.as_u64().unwrap_or(5)
                }
                Some(other) => {
                    return Err(ProtoError::new(
                        "INVALID_PARAMETERS",
                        format!("depth must be a positive integer, got {other}"),
                    ));
                }
            };
            let items = items(&o, |_| Ok(mode))?;
            if items.is_empty() {
                return Err(ProtoError::new(
                    "INVALID_PARAMETERS",
                    "At least one symbol must be specified",
                ));
            }
            Ok(Request::Subscribe {
                items,
                depth,
                request_id: request_id(&o),
            })
        }
        "unsubscribe" => {
            if o.get("unsubscribe_all") == Some(&Value::Bool(true)) {
                return Ok(Request::UnsubscribeAll {
                    request_id: request_id(&o),
                });
            }
            let single = !o.contains_key("symbols");
            let top = match o.get("mode") {
                None | Some(Value::Null) => Ok(Mode::Quote),
                Some(m) => parse_mode(m),
            };
            if single && let Err(e) = &top {
                return Err(ProtoError::new("INVALID_MODE", e.clone()));
            }
            let items = items(&o, |io| match io.get("mode") {
                // Per item, then the top level, then Quote (OpenAlgo ignores the top level).
                Some(m) if !single && !m.is_null() => parse_mode(m),
                _ => top.clone(),
            })?;
            if items.is_empty() {
                return Err(ProtoError::new(
                    "INVALID_PARAMETERS",
                    "Either symbols or unsubscribe_all is required",
                ));
            }
            Ok(Request::Unsubscribe {
                items,
                request_id: request_id(&o),
            })
        }
        "unsubscribe_all" => Ok(Request::UnsubscribeAll {
            request_id: request_id(&o),
        }),
        "subscribe_orders" | "unsubscribe_orders" => Ok(Request::Orders {
            subscribe: action == "subscribe_orders",
            request_id: request_id(&o),
        }),
        "get_broker_info" => Ok(Request::BrokerInfo),
        "get_supported_brokers" => Ok(Request::SupportedBrokers),
        "ping" => Ok(Request::Ping {
            timestamp: o.get("timestamp").cloned(),
            ping_id: o.get("_pingId").cloned(),
        }),
        other => Err(ProtoError::new(
            "INVALID_ACTION",
            format!("Invalid action: {other}"),
        )),
    }
}

/// The outcome of one subscribe / unsubscribe item, for the ack lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResult {
    /// The symbol as the client sent it.
    pub sym: SymbolRef,
    /// Mode of the item (when known).
    pub mode: Option<Mode>,
    /// `Err(message)` when the item failed.
    pub result: Result<(), String>,
}

fn item_json(r: &ItemResult, broker: &str, depth: Option<u64>) -> Value {
    let mut o = Map::new();
    o.insert("symbol".into(), r.sym.symbol.clone().into());
    o.insert("exchange".into(), r.sym.exchange.clone().into());
    match &r.result {
        Ok(()) => {
            o.insert("status".into(), "success".into());
        }
        Err(m) => {
            o.insert("status".into(), "error".into());
            o.insert("message".into(), m.clone().into());
        }
    }
    if let Some(m) = r.mode {
        o.insert("mode".into(), mode_label(m).into());
    }
    if let (Some(d), true) = (depth, r.result.is_ok()) {
        o.insert("depth".into(), d.into());
    }
    o.insert("broker".into(), broker.into());
    Value::Object(o)
}

fn with_request_id(mut v: Value, request_id: &Option<Value>) -> String {
    if let (Some(id), Value::Object(o)) = (request_id, &mut v) {
        o.insert("request_id".into(), id.clone());
    }
    v.to_string()
}

/// The subscribe ack: `status` is `success`, or `partial` when any item failed (OpenAlgo
/// never answers `error` for the whole request).
pub fn subscribe_reply(
    results: &[ItemResult],
    depth: u64,
    broker: &str,
    request_id: &Option<Value>,
) -> String {
    let failed = results.iter().any(|r| r.result.is_err());
    let v = json!({
        "type": "subscribe",
        "status": if failed { "partial" } else { "success" },
        "subscriptions": results.iter().map(|r| item_json(r, broker, Some(depth))).collect::<Vec<_>>(),
        "message": "Subscription processing complete",
        "broker": broker,
    });
    with_request_id(v, request_id)
}

/// The unsubscribe ack (also for unsubscribe_all, as OpenAlgo does): `success`, `partial`, or
/// `error` when every item failed.
pub fn unsubscribe_reply(
    results: &[ItemResult],
    broker: &str,
    request_id: &Option<Value>,
) -> String {
    let (ok, failed): (Vec<&ItemResult>, Vec<&ItemResult>) =
        results.iter().partition(|r| r.result.is_ok());
    let status = match (ok.is_empty(), failed.is_empty()) {
        (_, true) => "success",
        (true, false) => "error",
        (false, false) => "partial",
    };
    let v = json!({
        "type": "unsubscribe",
        "status": status,
        "message": "Unsubscription processing complete",
        "successful": ok.iter().map(|r| item_json(r, broker, None)).collect::<Vec<_>>(),
        "failed": failed.iter().map(|r| item_json(r, broker, None)).collect::<Vec<_>>(),
        "broker": broker,
    });
    with_request_id(v, request_id)
}

/// `{"type":"auth","status":"success",...}`.
pub fn auth_reply(broker: &str, user_id: &str) -> String {
    json!({
        "type": "auth",
        "status": "success",
        "message": "Authentication successful",
        "broker": broker,
        "user_id": user_id,
        "supported_features": {"ltp": true, "quote": true, "depth": true},
    })
    .to_string()
}

/// `{"type":"pong",...}` echoing `timestamp` as `client_timestamp` and `_pingId`.
pub fn pong_reply(timestamp: &Option<Value>, ping_id: &Option<Value>, now_ms: i64) -> String {
    let mut v = json!({"type": "pong", "status": "success", "server_timestamp": now_ms});
    if let Value::Object(o) = &mut v {
        if let Some(t) = timestamp {
            o.insert("client_timestamp".into(), t.clone());
        }
        if let Some(p) = ping_id {
            o.insert("_pingId".into(), p.clone());
        }
    }
    v.to_string()
}

/// `{"type":"broker_info",...}`; `adapter_status` is the engine's real state.
pub fn broker_info_reply(broker: &str, state: &str, user_id: &str) -> String {
    json!({
        "type": "broker_info",
        "status": "success",
        "broker": broker,
        "adapter_status": state,
        "user_id": user_id,
    })
    .to_string()
}

/// `{"type":"supported_brokers",...}`: the one broker this process feeds.
pub fn supported_brokers_reply(broker: &str) -> String {
    json!({"type": "supported_brokers", "status": "success", "brokers": [broker], "count": 1})
        .to_string()
}

/// Ack of `subscribe_orders` / `unsubscribe_orders` (SDK 2.x re-sends it after reconnects).
pub fn orders_reply(subscribe: bool, request_id: &Option<Value>) -> String {
    let (kind, msg) = if subscribe {
        (
            "subscribe_orders",
            "Subscribed to order updates (tickmux relays market data only; no order updates will arrive)",
        )
    } else {
        ("unsubscribe_orders", "Unsubscribed from order updates")
    };
    with_request_id(
        json!({"type": kind, "status": "success", "message": msg}),
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> ProtoError {
        parse(s).unwrap_err()
    }

    #[test]
    fn envelope_errors_match_openalgo() {
        assert_eq!(err("not json").code, "INVALID_JSON");
        assert_eq!(err("[1,2]").code, "INVALID_JSON");
        assert_eq!(err("\"x\"").code, "INVALID_JSON");
        let e = err(r#"{"action":"bogus"}"#);
        assert_eq!(
            (e.code, e.message.as_str()),
            ("INVALID_ACTION", "Invalid action: bogus")
        );
        assert_eq!(err(r#"{"x":1}"#).message, "Invalid action: None");
        assert_eq!(err(r#"{"action":7}"#).code, "INVALID_ACTION");
        let j: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(j["status"], "error");
        assert!(j.get("type").is_none(), "errors carry no type");
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            parse(r#"{"action":"authenticate","api_key":"k"}"#).unwrap(),
            Request::Auth(Some("k".into()))
        );
        assert_eq!(
            parse(r#"{"type":"auth","apikey":"k"}"#).unwrap(),
            Request::Auth(Some("k".into()))
        );
        assert_eq!(parse(r#"{"action":"auth"}"#).unwrap(), Request::Auth(None));
        assert_eq!(
            parse(r#"{"action":"auth","api_key":5}"#).unwrap(),
            Request::Auth(None)
        );
    }

    #[test]
    fn modes_as_ints_or_names() {
        for (v, m) in [
            (json!(1), Mode::Ltp),
            (json!(2), Mode::Quote),
            (json!(3), Mode::Depth),
            (json!("LTP"), Mode::Ltp),
            (json!("quote"), Mode::Quote),
            (json!("DePtH"), Mode::Depth),
        ] {
            assert_eq!(parse_mode(&v).unwrap(), m, "{v}");
        }
        assert!(
            parse_mode(&json!(9))
                .unwrap_err()
                .contains("Invalid mode 9")
        );
        assert!(
            parse_mode(&json!(true))
                .unwrap_err()
                .contains("bool (True)")
        );
        assert!(parse_mode(&json!(2.5)).unwrap_err().contains("float"));
        assert!(parse_mode(&json!("x")).unwrap_err().contains("'x'"));
    }

    #[test]
    fn subscribe_bulk_single_defaults_and_errors() {
        let r = parse(
            r#"{"action":"subscribe","symbols":[{"symbol":"RELIANCE","exchange":"nse"},{"symbol":"NIFTY","exchange":"NSE_INDEX"}],"mode":"Depth","depth":5,"request_id":"r1"}"#,
        )
        .unwrap();
        let Request::Subscribe {
            items,
            depth,
            request_id,
        } = r
        else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].sym.exchange, "NSE");
        assert_eq!(items[1].mode, Ok(Mode::Depth));
        assert_eq!((depth, request_id), (5, Some(json!("r1"))));
        // Single form, default mode Quote.
        let Request::Subscribe { items, .. } =
            parse(r#"{"action":"subscribe","symbol":"INFY","exchange":"NSE"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(items[0].mode, Ok(Mode::Quote));
        assert_eq!(
            err(r#"{"action":"subscribe","mode":9,"symbol":"A","exchange":"NSE"}"#).code,
            "INVALID_MODE"
        );
        assert_eq!(err(r#"{"action":"subscribe"}"#).code, "INVALID_PARAMETERS");
        assert_eq!(
            err(r#"{"action":"subscribe","symbols":"INFY"}"#).code,
            "INVALID_PARAMETERS"
        );
        assert_eq!(
            err(
                r#"{"action":"subscribe","symbols":[{"symbol":"A","exchange":"NSE"}],"depth":"x"}"#
            )
            .code,
            "INVALID_PARAMETERS"
        );
        // Items without symbol/exchange, or not objects, fail on their own.
        let Request::Subscribe { items, .. } = parse(
            r#"{"action":"subscribe","symbols":[{"symbol":"A"},"NSE:INFY",{"symbol":"B","exchange":"NSE"}]}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert!(items[0].mode.is_err() && items[1].mode.is_err());
        assert_eq!(items[2].mode, Ok(Mode::Quote));
    }

    #[test]
    fn unsubscribe_mode_resolution_item_then_top_then_quote() {
        let Request::Unsubscribe { items, .. } = parse(
            r#"{"action":"unsubscribe","mode":1,"symbols":[{"symbol":"A","exchange":"NSE","mode":3},{"symbol":"B","exchange":"NSE"},{"symbol":"C","exchange":"NSE","mode":"bogus"}]}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(items[0].mode, Ok(Mode::Depth));
        assert_eq!(items[1].mode, Ok(Mode::Ltp), "top-level mode applies");
        assert!(items[2].mode.as_ref().unwrap_err().contains("bogus"));
        let Request::Unsubscribe { items, .. } =
            parse(r#"{"action":"unsubscribe","symbols":[{"symbol":"B","exchange":"NSE"}]}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(items[0].mode, Ok(Mode::Quote));
        assert_eq!(
            err(r#"{"action":"unsubscribe","symbol":"A","exchange":"NSE","mode":"x"}"#).code,
            "INVALID_MODE"
        );
        assert_eq!(
            err(r#"{"action":"unsubscribe"}"#).code,
            "INVALID_PARAMETERS"
        );
        assert!(matches!(
            parse(r#"{"type":"unsubscribe_all"}"#).unwrap(),
            Request::UnsubscribeAll { .. }
        ));
        assert!(matches!(
            parse(r#"{"action":"unsubscribe","unsubscribe_all":true}"#).unwrap(),
            Request::UnsubscribeAll { .. }
        ));
    }

    #[test]
    fn replies() {
        let ok = ItemResult {
            sym: SymbolRef {
                symbol: "RELIANCE".into(),
                exchange: "NSE".into(),
            },
            mode: Some(Mode::Ltp),
            result: Ok(()),
        };
        let bad = ItemResult {
            result: Err("Symbol BAD not found".into()),
            ..ok.clone()
        };
        let v: Value = serde_json::from_str(&subscribe_reply(
            &[ok.clone(), bad.clone()],
            5,
            "kite",
            &Some(json!("r1")),
        ))
        .unwrap();
        assert_eq!(v["status"], "partial");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["subscriptions"][0]["mode"], "LTP");
        assert_eq!(v["subscriptions"][1]["status"], "error");
        let v: Value = serde_json::from_str(&unsubscribe_reply(&[bad], "kite", &None)).unwrap();
        assert_eq!(v["status"], "error");
        assert!(v.get("request_id").is_none());
        let v: Value = serde_json::from_str(&unsubscribe_reply(&[], "kite", &None)).unwrap();
        assert_eq!(v["status"], "success");
        let v: Value =
            serde_json::from_str(&pong_reply(&Some(json!(1)), &Some(json!(7)), 99)).unwrap();
        assert_eq!(
            (v["client_timestamp"].clone(), v["_pingId"].clone()),
            (json!(1), json!(7))
        );
        let v: Value = serde_json::from_str(&pong_reply(&None, &None, 99)).unwrap();
        assert!(v.get("_pingId").is_none());
    }
}
