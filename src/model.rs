//! Normalised market-data types shared by every adapter, the engine and all surfaces.
//!
//! Prices are fixed-point [`Price`] values (1 unit = 1e-7 rupee), exact for every broker divisor
//! (Kite CDS 1e7, BCD/NCO 1e4, else 100) and free of float rounding in comparisons; `to_f64`
//! gives the same float the brokers' official parsers produce (raw / divisor, correctly rounded).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Fixed-point price: `units` of 1e-7 rupee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i64);

impl Price {
    /// Units per rupee.
    pub const SCALE: i64 = 10_000_000;

    /// A price from a broker integer and the broker's divisor (100, 1e4 or 1e7).
    #[inline]
    pub fn from_raw(raw: i64, divisor: i64) -> Price {
        debug_assert!(divisor > 0 && Self::SCALE % divisor == 0);
        Price(raw.saturating_mul(Self::SCALE / divisor))
    }

    /// Back to the broker integer for a divisor (used by encoders).
    #[inline]
    pub fn to_raw(self, divisor: i64) -> i64 {
        self.0 / (Self::SCALE / divisor)
    }

    /// Rupees as f64 (exact integer / power of ten, correctly rounded).
    #[inline]
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }

    /// A price from rupees (rounded to the nearest unit).
    pub fn from_f64(rupees: f64) -> Price {
        Price((rupees * Self::SCALE as f64).round() as i64)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.to_f64())
    }
}

impl Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_f64())
    }
}

/// Subscription mode, ordered: a higher mode includes everything a lower one carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Last traded price only.
    Ltp,
    /// LTP plus volume, OHLC, totals, OI and timestamps.
    #[default]
    Quote,
    /// Quote plus 5-level market depth (Kite "full").
    Depth,
}

impl Mode {
    /// Lower-case name as used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ltp => "ltp",
            Mode::Quote => "quote",
            Mode::Depth => "depth",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ltp" | "1" => Ok(Mode::Ltp),
            "quote" | "2" => Ok(Mode::Quote),
            "depth" | "full" | "3" => Ok(Mode::Depth),
            other => Err(format!(
                "unknown mode {other:?} (expected ltp, quote or depth)"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Broker-side identity of an instrument on the feed: a segment code and a token, as the
/// broker's wire protocol names it. Keyed together so tokens that collide across exchanges
/// (Noren, Angel) never alias. For Kite, `seg` is `token & 0xff` and `token` the full token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeedKey {
    /// Broker segment / exchange code.
    pub seg: u16,
    /// Broker instrument token.
    pub token: u32,
}

impl FeedKey {
    /// Kite key: the segment lives in the token's low byte.
    pub fn kite(token: u32) -> FeedKey {
        FeedKey {
            seg: (token & 0xff) as u16,
            token,
        }
    }
}

impl fmt::Display for FeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.seg, self.token)
    }
}

/// An instrument the user can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instrument {
    /// Exchange as users type it (NSE, NFO, BSE, MCX, CDS, ...).
    pub exchange: String,
    /// Trading symbol (e.g. `INFY`, `NIFTY 50`).
    pub symbol: String,
    /// Broker feed identity.
    pub key: FeedKey,
}

impl Instrument {
    /// `EXCHANGE:SYMBOL`, the form users type.
    pub fn display_name(&self) -> String {
        format!("{}:{}", self.exchange, self.symbol)
    }
}

/// Open / high / low / close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Ohlc {
    /// Day open.
    pub open: Price,
    /// Day high.
    pub high: Price,
    /// Day low.
    pub low: Price,
    /// Previous close.
    pub close: Price,
}

/// Quote-mode fields. Integers the broker does not send for a packet kind are zero.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Quote {
    /// Volume traded today.
    pub volume: u64,
    /// Volume-weighted average traded price.
    pub average_price: Price,
    /// Quantity of the last trade.
    pub last_quantity: u64,
    /// Total pending buy quantity.
    pub total_buy_quantity: u64,
    /// Total pending sell quantity.
    pub total_sell_quantity: u64,
    /// Day OHLC (close = previous close).
    pub ohlc: Ohlc,
    /// Percent change of LTP over previous close (0 when close is 0).
    pub change: f64,
    /// Open interest.
    pub oi: u64,
    /// Day high of OI.
    pub oi_day_high: u64,
    /// Day low of OI.
    pub oi_day_low: u64,
    /// Last trade time, Unix seconds.
    pub last_trade_time: Option<i64>,
    /// Exchange timestamp, Unix seconds.
    pub exchange_time: Option<i64>,
}

/// One depth level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Level {
    /// Price at this level.
    pub price: Price,
    /// Quantity at this level.
    pub quantity: u64,
    /// Number of orders at this level.
    pub orders: u32,
}

/// Five-level market depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Depth {
    /// Bids, best first.
    pub buy: [Level; 5],
    /// Asks, best first.
    pub sell: [Level; 5],
}

/// One normalised tick. `mode` says which optional parts are present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tick {
    /// Broker feed identity.
    pub key: FeedKey,
    /// What the packet carried.
    pub mode: Mode,
    /// False for indices (not tradable).
    pub tradable: bool,
    /// Last traded price.
    pub ltp: Price,
    /// Quote fields (mode >= quote).
    pub quote: Option<Quote>,
    /// Depth (mode == depth, tradable instruments).
    pub depth: Option<Depth>,
}

impl Tick {
    /// An LTP-only tick.
    pub fn ltp(key: FeedKey, ltp: Price) -> Tick {
        Tick {
            key,
            mode: Mode::Ltp,
            tradable: true,
            ltp,
            quote: None,
            depth: None,
        }
    }
}

/// Parse "EXCHANGE:SYMBOL" (the symbol may contain spaces, e.g. "NSE:NIFTY 50").
pub fn parse_symbol(s: &str) -> Result<(String, String), String> {
    let s = s.trim();
    let (ex, sym) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected EXCHANGE:SYMBOL, e.g. NSE:INFY"))?;
    let ex = ex.trim().to_ascii_uppercase();
    let sym = sym.trim().to_ascii_uppercase();
    if ex.is_empty() || sym.is_empty() {
        return Err(format!("{s:?}: expected EXCHANGE:SYMBOL, e.g. NSE:INFY"));
    }
    // OpenAlgo's index exchanges have an underscore (NSE_INDEX).
    if !ex.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{s:?}: exchange {ex:?} is not a valid exchange code"
        ));
    }
    Ok((ex, sym))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_matches_plain_division_for_every_divisor() {
        for raw in [
            157315i64,
            832512500,
            832575,
            1,
            0,
            4_294_967_295,
            99_999_999,
        ] {
            for div in [100i64, 10_000, 10_000_000] {
                assert_eq!(
                    Price::from_raw(raw, div).to_f64(),
                    raw as f64 / div as f64,
                    "{raw}/{div}"
                );
                assert_eq!(Price::from_raw(raw, div).to_raw(div), raw);
            }
        }
    }

    #[test]
    fn mode_order_and_parse() {
        assert!(Mode::Ltp < Mode::Quote && Mode::Quote < Mode::Depth);
        assert_eq!("FULL".parse::<Mode>().unwrap(), Mode::Depth);
        assert!("deep".parse::<Mode>().is_err());
    }

    #[test]
    fn symbol_parse() {
        assert_eq!(
            parse_symbol("nse:nifty 50").unwrap(),
            ("NSE".into(), "NIFTY 50".into())
        );
        assert!(parse_symbol("INFY").is_err());
        assert!(parse_symbol(":INFY").is_err());
        assert!(parse_symbol("NSE:").is_err());
    }
}
