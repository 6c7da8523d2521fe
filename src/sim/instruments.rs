//! The simulator's instrument master: Kite CSV rows plus synthetic NFO instruments, and the
//! same instruments as Angel One and Noren (Shoonya / Flattrade) name them.
//!
//! Every CSV row exists for every protocol (except BCD rows on Angel, which has no BSE
//! currency segment). One market walk per Kite instrument token serves all of them: a tick
//! for NSE INFY follows the same seeded path whether Kite (408065), Angel (exchangeType 1,
//! "1594") or Noren (`NSE|1594`) asked for it.
//!
//! Broker tokens: the CSV's `exchange_token` for equities, futures and options (what Angel and
//! Noren use). Indices use the brokers' real tokens where known — Noren `NSE|26000` Nifty 50,
//! `NSE|26009` Nifty Bank, `NSE|26017` India VIX, `NSE|26037` Nifty Fin Service, BSE indices by
//! their BSE code (`BSE|1` SENSEX); Angel `99926000`, `99926009`, … (`999` + the Noren NSE
//! token) and `99919000` SENSEX — and a documented scheme otherwise: other NSE indices are
//! Noren `26100 + exchange_token % 1000` (Angel `999` + that), other BSE indices Angel
//! `99919000 + code`.
//!
//! Synthetic instruments exist so benches can subscribe thousands of instruments without a
//! huge CSV: ANY Kite token not in the CSV with segment 2 (NFO) and `token >= 0x0100_0000`
//! (exchange token >= 65536) is a synthetic NFO option with a deterministic base price. Its
//! symbol is `NFO:SYNTH<n>` where `token = (65536 + n) << 8 | 2`. The same instrument is Angel
//! exchangeType 2 (nse_fo) token `65536 + n` and Noren `NFO|<65536 + n>` ([`synthetic_key`]).

use crate::adapters::angel::codec as angel;
use crate::adapters::noren::codec as noren;
use crate::model::{FeedKey, Instrument, Price};
use std::collections::HashMap;

/// First synthetic token (exchange token 65536, segment NFO).
const SYNTH_BASE: u32 = 0x0100_0000;
/// First synthetic exchange token (Angel / Noren NFO token of synthetic 0).
const SYNTH_EXCHANGE_BASE: u32 = 0x1_0000;
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
    (SYNTH_EXCHANGE_BASE.wrapping_add(n) << 8) | SEG_NFO
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

/// The feed key of the `n`-th synthetic instrument on a broker's wire: Kite
/// `FeedKey::kite(synthetic_token(n))`; Angel `{seg: 2 (nse_fo), token: 65536 + n}`; Noren
/// (Shoonya, Flattrade) `{seg: 2 (NFO), token: 65536 + n}`.
pub fn synthetic_key(broker: super::SimBroker, n: u32) -> FeedKey {
    match broker {
        super::SimBroker::Kite => FeedKey::kite(synthetic_token(n)),
        _ => FeedKey {
            seg: SEG_NFO as u16,
            token: SYNTH_EXCHANGE_BASE.wrapping_add(n),
        },
    }
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

/// The wire protocol families whose keys the master maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Kite,
    Angel,
    Noren,
}

/// One CSV row as the broker masters need it.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub token: u32,
    pub exchange_token: u32,
    /// Kite trading symbol (upper case).
    pub symbol: String,
    pub name: String,
    /// `YYYY-MM-DD` or empty.
    pub expiry: String,
    /// Strike as written in the CSV (`26100`, `88.5`), `0` when none.
    pub strike: String,
    /// Tick size as written in the CSV (`0.05`; `0` for indices).
    pub tick_text: String,
    pub lot: u32,
    /// `EQ`, `FUT`, `CE`, `PE`.
    pub kind: String,
    /// Exchange (upper case): NSE, BSE, NFO, BFO, CDS, BCD, MCX.
    pub exchange: String,
    pub index: bool,
    /// Angel key (None: not on Angel).
    pub angel: Option<FeedKey>,
    /// Noren key (None: exchange unknown to Noren).
    pub noren: Option<FeedKey>,
}

/// The parsed master: lookups by token, by `EXCHANGE:SYMBOL` and by broker key, plus the CSV
/// text for `GET /instruments`.
pub(crate) struct Instruments {
    by_token: HashMap<u32, Params>,
    by_name: HashMap<String, u32>,
    rows: Vec<Row>,
    row_of: HashMap<u32, usize>,
    angel: HashMap<FeedKey, u32>,
    noren: HashMap<FeedKey, u32>,
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

/// Noren NSE index tokens the brokers really use, by Kite trading symbol.
const NSE_INDEX_TOKENS: [(&str, u32); 4] = [
    ("NIFTY 50", 26000),
    ("NIFTY BANK", 26009),
    ("INDIA VIX", 26017),
    ("NIFTY FIN SERVICE", 26037),
];

/// The Noren token of an index row.
fn noren_index_token(symbol: &str, exchange: &str, exchange_token: u32) -> u32 {
    match exchange {
        "NSE" => NSE_INDEX_TOKENS
            .iter()
            .find(|(s, _)| *s == symbol)
            .map_or(26_100 + exchange_token % 1000, |(_, t)| *t),
        _ => exchange_token,
    }
}

/// The Angel token of an index row.
fn angel_index_token(symbol: &str, exchange: &str, exchange_token: u32) -> u32 {
    match exchange {
        "NSE" => 99_900_000 + noren_index_token(symbol, exchange, exchange_token),
        "BSE" if symbol == "SENSEX" => 99_919_000,
        "BSE" => 99_919_000 + exchange_token % 1000,
        _ => exchange_token,
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
        let (et, nm, exp, st) = (
            col("exchange_token"),
            col("name"),
            col("expiry"),
            col("strike"),
        );
        let mut me = Instruments {
            by_token: HashMap::new(),
            by_name: HashMap::new(),
            rows: Vec::new(),
            row_of: HashMap::new(),
            angel: HashMap::new(),
            noren: HashMap::new(),
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
            me.add_row(Row {
                token,
                exchange_token: get(et).parse().unwrap_or(token >> 8),
                symbol: sym,
                name: get(nm).to_string(),
                expiry: get(exp).to_string(),
                strike: get(st).to_string(),
                tick_text: get(tk).to_string(),
                lot,
                kind: get(ty).to_ascii_uppercase(),
                exchange: exch,
                index,
                angel: None,
                noren: None,
            });
        }
        me.csv = csv;
        Ok(me)
    }

    /// Record a row and its broker keys; a key another row already took is left out (logged).
    fn add_row(&mut self, mut row: Row) {
        if self.row_of.contains_key(&row.token) {
            return;
        }
        let (sym, ex, et) = (&row.symbol, row.exchange.as_str(), row.exchange_token);
        let angel_key = angel::exchange_type(ex).map(|t| FeedKey {
            seg: u16::from(t),
            token: if row.index {
                angel_index_token(sym, ex, et)
            } else {
                et
            },
        });
        let noren_key = noren::seg_of(ex).map(|seg| FeedKey {
            seg,
            token: if row.index {
                noren_index_token(sym, ex, et)
            } else {
                et
            },
        });
        for (key, map, slot) in [
            (angel_key, &mut self.angel, &mut row.angel),
            (noren_key, &mut self.noren, &mut row.noren),
        ] {
            let Some(k) = key else { continue };
            if map.contains_key(&k) {
                tracing::debug!(key = %k, token = row.token, "simulator: broker key taken, row left out");
                continue;
            }
            map.insert(k, row.token);
            *slot = Some(k);
        }
        self.row_of.insert(row.token, self.rows.len());
        self.rows.push(row);
    }

    /// Market parameters of a token: CSV row, synthetic NFO, or `None` (unknown: silent).
    pub fn params(&self, token: u32) -> Option<Params> {
        match self.by_token.get(&token) {
            Some(p) => Some(*p),
            None if is_synthetic(token) => Some(synthetic_params(token)),
            None => None,
        }
    }

    /// The Kite token whose walk serves `key` on a protocol family (`None`: unknown
    /// instrument, subscribed but silent).
    pub fn market_token(&self, family: Family, key: FeedKey) -> Option<u32> {
        let synth = |key: FeedKey| {
            let t = key.token;
            (key.seg == SEG_NFO as u16 && (SYNTH_EXCHANGE_BASE..1 << 24).contains(&t))
                .then_some(t << 8 | SEG_NFO)
                .filter(|k| !self.by_token.contains_key(k))
        };
        match family {
            Family::Kite => self.params(key.token).map(|_| key.token),
            Family::Angel => self.angel.get(&key).copied().or_else(|| synth(key)),
            Family::Noren => self.noren.get(&key).copied().or_else(|| synth(key)),
        }
    }

    /// The CSV row of a Kite token (synthetic instruments have none).
    pub fn row(&self, token: u32) -> Option<&Row> {
        self.row_of.get(&token).map(|&i| &self.rows[i])
    }

    /// Every CSV row, in file order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
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

    fn embedded() -> Instruments {
        Instruments::parse(crate::sim::EMBEDDED_INSTRUMENTS.to_string()).unwrap()
    }

    #[test]
    fn embedded_master_is_consistent() {
        let ins = embedded();
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
        let ins = embedded();
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
        for b in [
            super::super::SimBroker::Angel,
            super::super::SimBroker::Shoonya,
        ] {
            let fam = b.family();
            assert_eq!(
                ins.market_token(fam, synthetic_key(b, 7)),
                Some(toks[7]),
                "{b:?}"
            );
        }
    }

    #[test]
    fn every_row_maps_to_the_brokers() {
        let ins = embedded();
        let k = |seg, token| FeedKey { seg, token };
        assert_eq!(ins.market_token(Family::Angel, k(1, 1594)), Some(408065));
        assert_eq!(ins.market_token(Family::Noren, k(1, 1594)), Some(408065));
        assert_eq!(
            ins.market_token(Family::Angel, k(1, 99926000)),
            Some(256265)
        );
        assert_eq!(
            ins.market_token(Family::Angel, k(1, 99926009)),
            Some(260105)
        );
        assert_eq!(ins.market_token(Family::Noren, k(1, 26000)), Some(256265));
        assert_eq!(ins.market_token(Family::Noren, k(1, 26009)), Some(260105));
        assert_eq!(ins.market_token(Family::Noren, k(4, 1)), Some(265));
        assert_eq!(ins.market_token(Family::Angel, k(3, 99919000)), Some(265));
        assert_eq!(ins.market_token(Family::Angel, k(2, 38007)), Some(9729794));
        assert_eq!(ins.market_token(Family::Noren, k(6, 5101)), Some(1305862));
        for r in ins.rows() {
            assert!(r.noren.is_some(), "{} not on Noren", r.symbol);
            assert_eq!(r.angel.is_none(), r.exchange == "BCD", "{}", r.symbol);
        }
    }
}
