//! OpenAlgo symbology → our instruments. OpenAlgo names indices on their own exchanges
//! (`NIFTY` on `NSE_INDEX`); brokers' masters name them on the cash exchange (`NSE:NIFTY 50`).
//! Equities and everything else resolve through the broker's instrument master as
//! `EXCHANGE:SYMBOL` or `EXCHANGE:TOKEN`.

use super::protocol::SymbolRef;
use crate::instruments::InstrumentMaster;
use crate::model::Instrument;
use std::sync::Arc;

/// OpenAlgo index names and the masters' names for them.
const INDEX_ALIASES: &[(&str, &str)] = &[
    ("NIFTY", "NIFTY 50"),
    ("BANKNIFTY", "NIFTY BANK"),
    ("FINNIFTY", "NIFTY FIN SERVICE"),
    ("MIDCPNIFTY", "NIFTY MID SELECT"),
    ("NIFTYNXT50", "NIFTY NEXT 50"),
    ("NIFTYIT", "NIFTY IT"),
    ("INDIAVIX", "INDIA VIX"),
    ("SENSEX", "SENSEX"),
    ("BANKEX", "BANKEX"),
];

/// The exchange an OpenAlgo exchange code lives on in the broker's master.
fn master_exchange(ex: &str) -> &str {
    match ex {
        "NSE_INDEX" => "NSE",
        "BSE_INDEX" => "BSE",
        "MCX_INDEX" => "MCX",
        other => other,
    }
}

/// Resolve a client's symbol; the error is the per-item message of the ack.
pub fn resolve(master: &InstrumentMaster, s: &SymbolRef) -> Result<Arc<Instrument>, String> {
    let ex = master_exchange(&s.exchange);
    if !ex.chars().all(|c| c.is_ascii_alphanumeric()) || ex.is_empty() {
        return Err(format!("Invalid exchange {}", s.exchange));
    }
    let sym = s.symbol.to_ascii_uppercase();
    if ex != s.exchange
        && let Some((_, name)) = INDEX_ALIASES.iter().find(|(a, _)| *a == sym)
        && let Ok(i) = master.resolve(&format!("{ex}:{name}"))
    {
        return Ok(i);
    }
    master
        .resolve(&format!("{ex}:{sym}"))
        .map_err(|_| format!("Symbol {} not found on {}", s.symbol, s.exchange))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeedKey;

    fn master() -> InstrumentMaster {
        let i = |ex: &str, sym: &str, tok| Instrument {
            exchange: ex.into(),
            symbol: sym.into(),
            key: FeedKey::kite(tok),
        };
        InstrumentMaster::new(vec![
            i("NSE", "RELIANCE", 738561),
            i("NSE", "NIFTY 50", 256265),
            i("BSE", "SENSEX", 265),
        ])
    }

    fn r(sym: &str, ex: &str) -> Result<u32, String> {
        resolve(
            &master(),
            &SymbolRef {
                symbol: sym.into(),
                exchange: ex.into(),
            },
        )
        .map(|i| i.key.token)
    }

    #[test]
    fn equities_indices_tokens_and_unknowns() {
        assert_eq!(r("RELIANCE", "NSE"), Ok(738561));
        assert_eq!(r("reliance", "NSE"), Ok(738561));
        assert_eq!(r("NIFTY", "NSE_INDEX"), Ok(256265));
        assert_eq!(r("NIFTY 50", "NSE_INDEX"), Ok(256265));
        assert_eq!(r("SENSEX", "BSE_INDEX"), Ok(265));
        assert_eq!(r("738561", "NSE"), Ok(738561));
        assert_eq!(r("BAD", "NSE").unwrap_err(), "Symbol BAD not found on NSE");
        // An alias only applies on the index exchanges.
        assert!(r("NIFTY", "NSE").is_err());
        assert!(r("X", "N$E").is_err());
    }
}
