//! The simulator's instrument master: Kite CSV rows plus synthetic NFO instruments.
//!
//! Synthetic instruments exist so benches can subscribe up to Kite's 3000-per-connection limit
//! without a 3000-row CSV: ANY token not in the CSV with segment 2 (NFO) and
//! `token >= 0x0100_0000` (exchange token >= 65536) is a synthetic NFO option with a
//! deterministic base price. Its symbol is `NFO:SYNTH<n>` where `token = (65536 + n) << 8 | 2`.

use crate::model::{FeedKey, Instrument, Price};
use std::collections::HashMap;

/// First synthetic token (exchange token 65536, segment NFO).
const SYNTH_BASE: u32 = 0x0100_0000;
const SEG_NFO: u32 = 2;
const SEG_INDICES: u32 = 9;
/// Tick size used when the CSV says 0 (indices) or is unparsable: 0.05 rupee.
const DEFAULT_TICK: i64 = Price::SCALE / 20;

/// True for a token the simulator treats as a synthetic NFO instrument (when not in the CSV).
pub fn is_synthetic(token: u32) -> bool {
    token >= SYNTH_BASE && token & 0xff == SEG_NFO
}

/// The `n`-th synthetic token: `(65536 + n) << 8 | 2` (valid for `n < 16_711_680`).
pub fn synthetic_token(n: u32) -> u32 {
    (0x1_0000u32.wrapping_add(n) << 8) | SEG_NFO
}

/// The first `n` synthetic tokens (for benches that need many instruments).
pub fn synthetic_tokens(n: usize) -> Vec<u32> {
    (0..n as u32).map(synthetic_token).collect()
}

/// The first `n` synthetic instruments (`NFO:SYNTH<i>`), resolvable by the simulator's REST.
pub fn synthetic_instruments(n: usize) -> Vec<Instrument> {
    (0..n as u32)
        .map(|i| Instrument {
            exchange: "NFO".into(),
            symbol: format!("SYNTH{i}"),
            key: FeedKey::kite(synthetic_token(i)),
        })
        .collect()
}

/// What the market model needs about an instrument. Prices in [`Price`] units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Kite instrument token.
    pub token: u32,
    /// Base (previous close) price, a multiple of `tick`.
    pub base: i64,
    /// Tick size, > 0.
    pub tick: i64,
    /// Lot size, >= 1.
    pub lot: u32,
    /// Index (segment 9): not tradable, no depth, no volume.
    pub index: bool,
    /// Derivative (futures/options): carries open interest.
    pub derivative: bool,
}

/// The parsed master: lookups by token and by `EXCHANGE:SYMBOL`, plus the CSV text for
/// `GET /instruments`.
pub(crate) struct Instruments {
    by_token: HashMap<u32, Params>,
    by_name: HashMap<String, u32>,
    csv: String,
}

fn round_to_tick(units: i64, tick: i64) -> i64 {
    ((units + tick / 2) / tick * tick).max(tick)
}

fn synthetic_params(token: u32) -> Params {
    // Deterministic spread of prices from 5 to ~2000 rupees (a typical option chain).
    let h = (token as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let rupees_x100 = 500 + (h % 200_000) as i64;
    Params {
        token,
        base: round_to_tick(rupees_x100 * (Price::SCALE / 100), DEFAULT_TICK),
        tick: DEFAULT_TICK,
        lot: 75,
        index: false,
        derivative: true,
    }
}

impl Instruments {
    /// Parse Kite's instrument CSV (header-driven; only `instrument_token` is mandatory).
    pub fn parse(csv: String) -> Result<Instruments, String> {
        let mut lines = csv.lines();
        let header = lines.next().ok_or("instrument master is empty")?;
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let it = col("instrument_token").ok_or("instrument master: no instrument_token column")?;
        let (ts, lp, tk, lot, ty, seg, ex) = (
            col("tradingsymbol"),
            col("last_price"),
            col("tick_size"),
            col("lot_size"),
            col("instrument_type"),
            col("segment"),
            col("exchange"),
        );
        let mut me = Instruments {
            by_token: HashMap::new(),
            by_name: HashMap::new(),
            csv: String::new(),
        };
        for (n, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .collect();
            let get = |i: Option<usize>| i.and_then(|i| f.get(i).copied()).unwrap_or("");
            let token: u32 = get(Some(it))
                .parse()
                .map_err(|_| format!("instrument master line {}: bad instrument_token", n + 2))?;
            let index = token & 0xff == SEG_INDICES || get(seg).eq_ignore_ascii_case("INDICES");
            let tick = match get(tk).parse::<f64>() {
                Ok(t) if t > 0.0 => Price::from_f64(t).0.max(1),
                _ => DEFAULT_TICK,
            };
            let base = match get(lp).parse::<f64>() {
                Ok(p) if p > 0.0 => round_to_tick(Price::from_f64(p).0, tick),
                _ => round_to_tick(100 * Price::SCALE, tick),
            };
            let derivative = matches!(get(ty), "FUT" | "CE" | "PE");
            let lot = get(lot).parse::<u32>().unwrap_or(1).max(1);
            me.by_token.insert(
                token,
                Params {
                    token,
                    base,
                    tick,
                    lot,
                    index,
                    derivative,
                },
            );
            let (exch, sym) = (get(ex).to_ascii_uppercase(), get(ts).to_ascii_uppercase());
            if !exch.is_empty() && !sym.is_empty() {
                me.by_name.insert(format!("{exch}:{sym}"), token);
            }
        }
        me.csv = csv;
        Ok(me)
    }

    /// Market parameters of a token: CSV row, synthetic NFO, or `None` (unknown: silent).
    pub fn params(&self, token: u32) -> Option<Params> {
        match self.by_token.get(&token) {
            Some(p) => Some(*p),
            None if is_synthetic(token) => Some(synthetic_params(token)),
            None => None,
        }
    }

    /// Resolve `EXCHANGE:TRADINGSYMBOL` (case-insensitive) to a token.
    pub fn resolve(&self, name: &str) -> Option<u32> {
        let upper = name.trim().to_ascii_uppercase();
        if let Some(t) = self.by_name.get(&upper) {
            return Some(*t);
        }
        let n: u32 = upper.strip_prefix("NFO:SYNTH")?.parse().ok()?;
        let token = synthetic_token(n);
        (n < 0x00fe_0000 && !self.by_token.contains_key(&token)).then_some(token)
    }

    /// The CSV text as loaded.
    pub fn csv(&self) -> &str {
        &self.csv
    }

    /// Number of CSV rows.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_master_is_consistent() {
        let ins = Instruments::parse(crate::sim::EMBEDDED_INSTRUMENTS.to_string()).unwrap();
        assert!(ins.len() >= 150, "{}", ins.len());
        for (tok, p) in &ins.by_token {
            assert_eq!(p.base % p.tick, 0, "{tok}");
            assert!(
                !is_synthetic(*tok),
                "{tok} collides with the synthetic range"
            );
        }
        let nifty = ins.resolve("nse:nifty 50").unwrap();
        assert_eq!(nifty, 256265);
        assert!(ins.params(nifty).unwrap().index);
        assert_eq!(ins.resolve("NSE:INFY"), Some(408065));
        let usd = ins.resolve("CDS:USDINR26NOVFUT").unwrap();
        assert_eq!(ins.params(usd).unwrap().tick, 25_000);
    }

    #[test]
    fn synthetic_tokens_resolve() {
        let ins = Instruments::parse(crate::sim::EMBEDDED_INSTRUMENTS.to_string()).unwrap();
        let toks = synthetic_tokens(3000);
        assert!(
            toks.iter()
                .all(|t| is_synthetic(*t) && ins.params(*t).is_some())
        );
        assert_eq!(ins.resolve("NFO:SYNTH7"), Some(toks[7]));
        assert_eq!(synthetic_instruments(2)[1].key.token, toks[1]);
        assert!(
            ins.params(0x0100_0001).is_none(),
            "NSE-segment token is not synthetic"
        );
    }
}
