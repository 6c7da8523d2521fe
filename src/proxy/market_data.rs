//! `market_data` messages (openalgo.md §1.7), pure: a normalised tick → OpenAlgo's envelope
//! `{"type":"market_data","symbol","exchange","mode":<int>,"data":{..},"broker"}`.
//!
//! `data` is the superset the brokers' adapters and the official SDK read between them: both
//! spellings where OpenAlgo's adapters disagree (`last_quantity` / `last_trade_quantity`,
//! `average_price` / `avg_trade_price`, `change_percent` / `percent_change`, `oi` /
//! `open_interest`), an int `mode` inside and out, prices as rupee floats. A message at mode m
//! carries only what m includes (LTP ⊂ Quote ⊂ Depth).

use super::protocol::{SymbolRef, mode_int};
use crate::model::{Level, Mode, Price, Tick};
use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    symbol: &'a str,
    exchange: &'a str,
    mode: u8,
    data: Data<'a>,
    broker: &'a str,
}

#[derive(Serialize)]
struct Data<'a> {
    symbol: &'a str,
    exchange: &'a str,
    mode: u8,
    ltp: f64,
    /// Local receive time, Unix ms (what OpenAlgo's adapters put here).
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ltt: Option<i64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    quote: Option<QuoteData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<DepthData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth_level: Option<u8>,
}

#[derive(Serialize)]
struct QuoteData {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
    last_quantity: u64,
    last_trade_quantity: u64,
    average_price: f64,
    avg_trade_price: f64,
    total_buy_quantity: u64,
    total_sell_quantity: u64,
    /// Absolute change over the previous close (the SDK reads `change`).
    change: f64,
    change_percent: f64,
    percent_change: f64,
    oi: u64,
    open_interest: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_timestamp: Option<i64>,
}

#[derive(Serialize)]
struct LevelData {
    price: f64,
    quantity: u64,
    orders: u32,
}

#[derive(Serialize)]
struct DepthData {
    buy: Vec<LevelData>,
    sell: Vec<LevelData>,
}

fn px(p: Price) -> f64 {
    p.to_f64()
}

fn levels(l: &[Level; 5]) -> Vec<LevelData> {
    l.iter()
        .map(|l| LevelData {
            price: px(l.price),
            quantity: l.quantity,
            orders: l.orders,
        })
        .collect()
}

/// The `market_data` message for a client holding `mode` on `sym`. `None` when the tick does
/// not carry what `mode` needs (a depth subscriber is not sent a depth-less index tick as if
/// it were depth: it gets the next full one).
pub fn market_data(
    sym: &SymbolRef,
    mode: Mode,
    tick: &Tick,
    broker: &str,
    now_ms: i64,
) -> Option<String> {
    if mode > tick.mode && !(mode == Mode::Depth && tick.mode == Mode::Quote && !tick.tradable) {
        // A lower-mode packet (e.g. an LTP-only packet) does not satisfy a higher mode, except
        // that indices never have depth: their quote is the most a depth subscriber can get.
        return None;
    }
    let quote = (mode >= Mode::Quote)
        .then_some(tick.quote.as_ref())
        .flatten()
        .map(|q| {
            let abs = if q.ohlc.close.0 != 0 {
                (tick.ltp.0 - q.ohlc.close.0) as f64 / Price::SCALE as f64
            } else {
                0.0
            };
            QuoteData {
                open: px(q.ohlc.open),
                high: px(q.ohlc.high),
                low: px(q.ohlc.low),
                close: px(q.ohlc.close),
                volume: q.volume,
                last_quantity: q.last_quantity,
                last_trade_quantity: q.last_quantity,
                average_price: px(q.average_price),
                avg_trade_price: px(q.average_price),
                total_buy_quantity: q.total_buy_quantity,
                total_sell_quantity: q.total_sell_quantity,
                change: (abs * 100.0).round() / 100.0,
                change_percent: q.change,
                percent_change: q.change,
                oi: q.oi,
                open_interest: q.oi,
                exchange_timestamp: q.exchange_time.map(|s| s * 1000),
            }
        });
    let depth = (mode == Mode::Depth)
        .then_some(tick.depth.as_ref())
        .flatten()
        .map(|d| DepthData {
            buy: levels(&d.buy),
            sell: levels(&d.sell),
        });
    let m = mode_int(mode);
    let env = Envelope {
        kind: "market_data",
        symbol: &sym.symbol,
        exchange: &sym.exchange,
        mode: m,
        data: Data {
            symbol: &sym.symbol,
            exchange: &sym.exchange,
            mode: m,
            ltp: px(tick.ltp),
            timestamp: now_ms,
            ltt: tick
                .quote
                .as_ref()
                .and_then(|q| q.last_trade_time)
                .map(|s| s * 1000),
            depth_level: depth.as_ref().map(|_| 5),
            quote,
            depth,
        },
        broker,
    };
    serde_json::to_string(&env).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Depth, FeedKey, Ohlc, Quote};
    use serde_json::Value;

    fn sym() -> SymbolRef {
        SymbolRef {
            symbol: "RELIANCE".into(),
            exchange: "NSE".into(),
        }
    }

    fn full() -> Tick {
        let p = |r| Price::from_raw(r, 100);
        let mut d = Depth::default();
        for i in 0..5 {
            d.buy[i] = Level {
                price: p(287440 - i as i64 * 5),
                quantity: 100 + i as u64,
                orders: 1 + i as u32,
            };
            d.sell[i] = Level {
                price: p(287450 + i as i64 * 5),
                quantity: 200 + i as u64,
                orders: 2 + i as u32,
            };
        }
        Tick {
            key: FeedKey::kite(738561),
            mode: Mode::Depth,
            tradable: true,
            ltp: p(287450),
            quote: Some(Quote {
                volume: 1234567,
                average_price: p(286920),
                last_quantity: 10,
                total_buy_quantity: 50000,
                total_sell_quantity: 61000,
                ohlc: Ohlc {
                    open: p(286000),
                    high: p(288000),
                    low: p(285510),
                    close: p(285130),
                },
                change: 0.81,
                oi: 0,
                last_trade_time: Some(1_755_840_000),
                exchange_time: Some(1_755_840_001),
                ..Default::default()
            }),
            depth: Some(d),
        }
    }

    fn j(mode: Mode, t: &Tick) -> Value {
        serde_json::from_str(&market_data(&sym(), mode, t, "kite", 42).unwrap()).unwrap()
    }

    #[test]
    fn each_mode_carries_what_it_includes_with_both_spellings() {
        let t = full();
        let v = j(Mode::Ltp, &t);
        assert_eq!(v["type"], "market_data");
        assert_eq!(
            (v["mode"].clone(), v["data"]["mode"].clone()),
            (1.into(), 1.into())
        );
        assert_eq!(v["data"]["ltp"], 2874.5);
        assert_eq!(v["data"]["timestamp"], 42);
        assert_eq!(v["data"]["ltt"], 1_755_840_000_000i64);
        assert!(v["data"].get("volume").is_none() && v["data"].get("depth").is_none());
        let v = j(Mode::Quote, &t);
        assert_eq!(v["mode"], 2);
        assert_eq!(v["data"]["volume"], 1234567);
        assert_eq!(v["data"]["last_quantity"], v["data"]["last_trade_quantity"]);
        assert_eq!(v["data"]["average_price"], 2869.2);
        assert_eq!(v["data"]["avg_trade_price"], 2869.2);
        assert_eq!(v["data"]["change"], 23.2);
        assert_eq!(v["data"]["change_percent"], 0.81);
        assert!(v["data"].get("depth").is_none());
        let v = j(Mode::Depth, &t);
        assert_eq!(v["mode"], 3);
        assert_eq!(v["data"]["depth"]["buy"][0]["price"], 2874.4);
        assert_eq!(v["data"]["depth"]["sell"][4]["orders"], 6);
        assert_eq!(v["data"]["depth_level"], 5);
        assert_eq!(v["broker"], "kite");
    }

    #[test]
    fn a_lower_mode_packet_does_not_pose_as_a_higher_mode() {
        let t = Tick::ltp(FeedKey::kite(738561), Price::from_raw(100, 100));
        assert!(market_data(&sym(), Mode::Quote, &t, "kite", 0).is_none());
        assert!(market_data(&sym(), Mode::Ltp, &t, "kite", 0).is_some());
        // An index quote is the most a depth subscriber of an index gets.
        let mut idx = full();
        idx.mode = Mode::Quote;
        idx.tradable = false;
        idx.depth = None;
        let v = j(Mode::Depth, &idx);
        assert_eq!(v["mode"], 3);
        assert!(v["data"].get("depth").is_none());
    }
}
