//! The OpenAlgo client protocol from the client side, pure: encode authenticate / subscribe
//! / unsubscribe, decode the server's messages into ticks (openalgo.md §1). Instruments are
//! named by (exchange, symbol) on this wire; a [`SymbolTable`] maps them to feed keys.

use crate::adapters::{CodecError, Inbound};
use crate::model::{Depth, FeedKey, Level, Mode, Ohlc, Price, Quote, Tick};
use serde_json::{Value, json};
use std::collections::HashMap;

/// (exchange, symbol) ⇄ feed key, for a wire that names instruments by symbol. Keys are
/// allocated in order (`seg` 0, `token` 1, 2, ...).
#[derive(Debug, Default)]
pub struct SymbolTable {
    by_name: HashMap<(String, String), FeedKey>,
    by_key: HashMap<FeedKey, (String, String)>,
}

impl SymbolTable {
    /// The key for (exchange, symbol), allocated on first use.
    pub fn key(&mut self, exchange: &str, symbol: &str) -> FeedKey {
        let name = (exchange.to_string(), symbol.to_string());
        if let Some(k) = self.by_name.get(&name) {
            return *k;
        }
        let k = FeedKey {
            seg: 0,
            token: self.by_name.len() as u32 + 1,
        };
        self.by_name.insert(name.clone(), k);
        self.by_key.insert(k, name);
        k
    }

    /// The key of a known (exchange, symbol).
    pub fn get(&self, exchange: &str, symbol: &str) -> Option<FeedKey> {
        self.by_name
            .get(&(exchange.to_string(), symbol.to_string()))
            .copied()
    }

    /// The (exchange, symbol) of a key.
    pub fn name(&self, k: &FeedKey) -> Option<&(String, String)> {
        self.by_key.get(k)
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

/// `{"action":"authenticate","api_key":...}`.
pub fn encode_auth(api_key: &str) -> String {
    json!({"action": "authenticate", "api_key": api_key}).to_string()
}

/// One bulk subscribe in a mode, five depth levels.
pub fn encode_subscribe(mode: Mode, names: &[(String, String)]) -> String {
    let symbols: Vec<Value> = names
        .iter()
        .map(|(e, s)| json!({"symbol": s, "exchange": e}))
        .collect();
    json!({"action": "subscribe", "symbols": symbols, "mode": mode_int(mode), "depth": 5})
        .to_string()
}

/// One bulk unsubscribe, the mode per item (the form every OpenAlgo server honours).
pub fn encode_unsubscribe(mode: Mode, names: &[(String, String)]) -> String {
    let symbols: Vec<Value> = names
        .iter()
        .map(|(e, s)| json!({"symbol": s, "exchange": e, "mode": mode_int(mode)}))
        .collect();
    json!({"action": "unsubscribe", "symbols": symbols}).to_string()
}

fn num(v: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| match v.get(*k)? {
        Value::Number(n) => n.as_f64(),
        // Some adapters pass broker strings through.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn qty(v: &Value, keys: &[&str]) -> u64 {
    num(v, keys).map_or(0, |x| {
        if x.is_finite() && x > 0.0 {
            x as u64
        } else {
            0
        }
    })
}

fn price(v: &Value, keys: &[&str]) -> Price {
    num(v, keys)
        .filter(|x| x.is_finite() && x.abs() < 1e11)
        .map_or(Price(0), Price::from_f64)
}

/// Epoch seconds from an OpenAlgo time field (adapters send seconds or milliseconds).
fn epoch_secs(v: &Value, keys: &[&str]) -> Option<i64> {
    let x = num(v, keys)?;
    if !x.is_finite() || x <= 0.0 {
        return None;
    }
    Some(if x > 1e11 {
        (x / 1000.0) as i64
    } else {
        x as i64
    })
}

fn levels(side: Option<&Value>) -> [Level; 5] {
    let mut out = [Level::default(); 5];
    if let Some(Value::Array(a)) = side {
        for (slot, l) in out.iter_mut().zip(a.iter()) {
            *slot = Level {
                price: price(l, &["price"]),
                quantity: qty(l, &["quantity"]),
                orders: qty(l, &["orders"]).min(u64::from(u32::MAX)) as u32,
            };
        }
    }
    out
}

/// A `market_data` message as a tick (its envelope `mode` says what it carries).
pub fn market_data_tick(
    key: FeedKey,
    exchange: &str,
    mode: u64,
    d: &Value,
) -> Result<Tick, CodecError> {
    let mode = match mode {
        1 => Mode::Ltp,
        2 => Mode::Quote,
        3 => Mode::Depth,
        m => return Err(CodecError::BadText(format!("market_data with mode {m}"))),
    };
    if num(d, &["ltp"]).is_none() {
        return Err(CodecError::BadText("market_data without ltp".into()));
    }
    let ltp = price(d, &["ltp"]);
    let quote = (mode >= Mode::Quote).then(|| {
        let ohlc = Ohlc {
            open: price(d, &["open"]),
            high: price(d, &["high"]),
            low: price(d, &["low"]),
            close: price(d, &["close", "prev_close"]),
        };
        let change = num(d, &["change_percent", "percent_change"]).unwrap_or_else(|| {
            if ohlc.close.0 != 0 {
                (ltp.to_f64() - ohlc.close.to_f64()) * 100.0 / ohlc.close.to_f64()
            } else {
                0.0
            }
        });
        Quote {
            volume: qty(d, &["volume"]),
            average_price: price(d, &["average_price", "avg_trade_price"]),
            last_quantity: qty(d, &["last_quantity", "last_trade_quantity"]),
            total_buy_quantity: qty(d, &["total_buy_quantity"]),
            total_sell_quantity: qty(d, &["total_sell_quantity"]),
            ohlc,
            change,
            oi: qty(d, &["oi", "open_interest"]),
            last_trade_time: epoch_secs(d, &["ltt"]),
            exchange_time: epoch_secs(d, &["exchange_timestamp"]),
            ..Default::default()
        }
    });
    let depth = d.get("depth").map(|x| Depth {
        buy: levels(x.get("buy")),
        sell: levels(x.get("sell")),
    });
    Ok(Tick {
        key,
        mode: if mode == Mode::Depth && depth.is_none() {
            Mode::Quote
        } else {
            mode
        },
        tradable: !exchange.ends_with("_INDEX"),
        ltp,
        quote,
        depth: if mode == Mode::Depth { depth } else { None },
    })
}

/// Decode one server message; ticks go to `out`.
pub fn decode(table: &SymbolTable, text: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| CodecError::BadText(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(CodecError::BadText("not a JSON object".into()));
    }
    if v["status"] == "error" {
        let code = v["code"].as_str().unwrap_or("ERROR");
        let msg = v["message"].as_str().unwrap_or("");
        // A lockout ("too many failed attempts") is transient, not a bad key.
        if code == "AUTHENTICATION_ERROR" && !msg.contains("Too many") {
            return Ok(Inbound::AuthRejected(format!("{code}: {msg}")));
        }
        return Ok(Inbound::ServerError(format!("{code}: {msg}")));
    }
    Ok(match v["type"].as_str().unwrap_or("") {
        "auth" if v["status"] == "success" => Inbound::LoginOk,
        "market_data" => {
            let (Some(ex), Some(sym)) = (v["exchange"].as_str(), v["symbol"].as_str()) else {
                return Err(CodecError::BadText(
                    "market_data without exchange/symbol".into(),
                ));
            };
            let Some(key) = table.get(ex, sym) else {
                // Not (or no longer) ours: a late message after an unsubscribe.
                return Ok(Inbound::Ticks { skipped: 1 });
            };
            let mode = v["mode"]
                .as_u64()
                .ok_or_else(|| CodecError::BadText("market_data without an int mode".into()))?;
            out.push(market_data_tick(key, ex, mode, &v["data"])?);
            Inbound::Ticks { skipped: 0 }
        }
        "heartbeat" | "connection_status" | "pong" => Inbound::Heartbeat,
        "subscribe" | "unsubscribe" if v["status"] != "success" => {
            let failed: Vec<String> = v["subscriptions"]
                .as_array()
                .or(v["failed"].as_array())
                .into_iter()
                .flatten()
                .filter(|i| i["status"] == "error")
                .map(|i| {
                    format!(
                        "{}:{} ({})",
                        i["exchange"].as_str().unwrap_or("?"),
                        i["symbol"].as_str().unwrap_or("?"),
                        i["message"].as_str().unwrap_or("failed")
                    )
                })
                .collect();
            Inbound::ServerError(format!("upstream refused {}", failed.join(", ")))
        }
        _ => Inbound::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SymbolTable {
        let mut t = SymbolTable::default();
        t.key("NSE", "INFY");
        t.key("NSE_INDEX", "NIFTY");
        t
    }

    #[test]
    fn table_allocates_stable_keys() {
        let mut t = table();
        assert_eq!(t.key("NSE", "INFY"), FeedKey { seg: 0, token: 1 });
        assert_eq!(t.key("NSE", "TCS"), FeedKey { seg: 0, token: 3 });
        assert_eq!(t.name(&FeedKey { seg: 0, token: 2 }).unwrap().1, "NIFTY");
    }

    #[test]
    fn decodes_each_mode_and_the_control_messages() {
        let t = table();
        let mut out = Vec::new();
        let m = r#"{"type":"market_data","symbol":"INFY","exchange":"NSE","mode":3,"broker":"kite","data":{"ltp":1523.45,"open":1500,"high":1530,"low":1490,"close":1510,"volume":1234,"avg_trade_price":1512.5,"last_trade_quantity":7,"change_percent":0.89,"ltt":1755840000000,"depth":{"buy":[{"price":1523.4,"quantity":10,"orders":2}],"sell":[{"price":1523.5,"quantity":11,"orders":3}]}}}"#;
        assert_eq!(decode(&t, m, &mut out), Ok(Inbound::Ticks { skipped: 0 }));
        let k = out[0];
        assert_eq!(k.mode, Mode::Depth);
        assert_eq!(k.ltp, Price::from_raw(152345, 100));
        let q = k.quote.unwrap();
        assert_eq!((q.volume, q.last_quantity), (1234, 7));
        assert_eq!(q.average_price, Price::from_raw(151250, 100));
        assert_eq!(q.last_trade_time, Some(1_755_840_000));
        assert_eq!(k.depth.unwrap().sell[0].orders, 3);
        let m = r#"{"type":"market_data","symbol":"NIFTY","exchange":"NSE_INDEX","mode":1,"data":{"ltp":26000.5}}"#;
        decode(&t, m, &mut out).unwrap();
        assert!(!out[1].tradable && out[1].quote.is_none());
        assert_eq!(
            decode(&t, r#"{"type":"auth","status":"success"}"#, &mut out),
            Ok(Inbound::LoginOk)
        );
        assert!(matches!(
            decode(
                &t,
                r#"{"status":"error","code":"AUTHENTICATION_ERROR","message":"Invalid API key"}"#,
                &mut out
            ),
            Ok(Inbound::AuthRejected(_))
        ));
        assert!(matches!(
            decode(
                &t,
                r#"{"status":"error","code":"AUTHENTICATION_ERROR","message":"Too many failed authentication attempts; try again in 5 s"}"#,
                &mut out
            ),
            Ok(Inbound::ServerError(_))
        ));
        assert_eq!(
            decode(&t, r#"{"type":"heartbeat","state":"live"}"#, &mut out),
            Ok(Inbound::Heartbeat)
        );
        assert!(matches!(
            decode(&t, r#"{"type":"subscribe","status":"partial","subscriptions":[{"symbol":"X","exchange":"NSE","status":"error","message":"Symbol X not found"}]}"#, &mut out),
            Ok(Inbound::ServerError(m)) if m.contains("NSE:X")
        ));
        // Unknown instruments are skipped, malformed messages are errors.
        let m =
            r#"{"type":"market_data","symbol":"ZZZ","exchange":"NSE","mode":1,"data":{"ltp":1}}"#;
        assert_eq!(decode(&t, m, &mut out), Ok(Inbound::Ticks { skipped: 1 }));
        for bad in [
            "not json",
            "[1]",
            r#"{"type":"market_data","symbol":"INFY","exchange":"NSE","mode":9,"data":{"ltp":1}}"#,
            r#"{"type":"market_data","symbol":"INFY","exchange":"NSE","mode":1,"data":{}}"#,
            r#"{"type":"market_data","exchange":"NSE","mode":1,"data":{"ltp":1}}"#,
        ] {
            assert!(decode(&t, bad, &mut out).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoders() {
        let n = vec![("NSE".to_string(), "INFY".to_string())];
        let v: Value = serde_json::from_str(&encode_subscribe(Mode::Quote, &n)).unwrap();
        assert_eq!(
            (v["mode"].clone(), v["symbols"][0]["symbol"].clone()),
            (json!(2), json!("INFY"))
        );
        let v: Value = serde_json::from_str(&encode_unsubscribe(Mode::Depth, &n)).unwrap();
        assert_eq!(v["symbols"][0]["mode"], 3);
        assert!(encode_auth("k").contains("authenticate"));
    }
}
