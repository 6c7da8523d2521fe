//! Broker instrument masters built from the Kite-format sample, in each broker's own format:
//! Angel's `OpenAPIScripMaster.json` and Noren's per-exchange `{EXCH}_symbols.txt` (zipped as
//! the brokers serve them), plus the broker symbols the feeds and REST quotes carry.
//!
//! Angel (a JSON array, every value a string, as the real file):
//! `{"token":"1594","symbol":"INFY-EQ","name":"INFY","expiry":"","strike":"-1.000000",
//! "lotsize":"1","instrumenttype":"","exch_seg":"NSE","tick_size":"5.000000"}`. Tick size and
//! strike are in wire price units (paise; cde_fo 1e-7 rupee), strike `-1` for non-options and
//! `0` for indices; symbols `INFY-EQ` (NSE equities), `INFY` (BSE), `Nifty 50` (indices,
//! instrumenttype `AMXIDX`), `NIFTY24NOV26FUT`, `NIFTY24NOV2626100CE` (name + DDMMMYY [+
//! strike] + FUT/CE/PE); expiry `24NOV2026`; instrument types FUTIDX/FUTSTK/OPTIDX/OPTSTK,
//! FUTCUR/OPTCUR (CDS), FUTCOM/OPTFUT (MCX).
//!
//! Noren (CSV with a trailing comma, as Shoonya's): cash exchanges
//! `Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,`
//! (`NSE,1594,1,INFY,INFY-EQ,EQ,0.05,`; indices `NSE,26000,1,NIFTY,Nifty 50,INDEX,0.05,`);
//! derivative exchanges
//! `Exchange,Token,LotSize,Symbol,TradingSymbol,Expiry,Instrument,OptionType,StrikePrice,TickSize,`
//! (`NFO,38007,75,NIFTY,NIFTY24NOV26C26100,24-NOV-2026,OPTIDX,CE,26100,0.05,`; futures
//! `NIFTY24NOV26F` with option type `XX` and strike 0).

use super::instruments::{Instruments, Row};
use crate::adapters::angel::codec as angel;
use crate::adapters::noren::codec as noren;
use crate::model::{FeedKey, Price};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write as _;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Index display names and short names as Angel and Noren write them, by Kite symbol.
const INDEX_NAMES: [(&str, &str, &str); 6] = [
    ("NIFTY 50", "Nifty 50", "NIFTY"),
    ("NIFTY BANK", "Nifty Bank", "BANKNIFTY"),
    ("INDIA VIX", "India VIX", "INDIA VIX"),
    ("NIFTY FIN SERVICE", "Nifty Fin Service", "FINNIFTY"),
    ("SENSEX", "SENSEX", "SENSEX"),
    ("BANKEX", "BANKEX", "BANKEX"),
];

/// Underlyings whose derivatives are index derivatives.
const INDEX_UNDERLYINGS: [&str; 6] = [
    "NIFTY",
    "BANKNIFTY",
    "FINNIFTY",
    "MIDCPNIFTY",
    "SENSEX",
    "BANKEX",
];

/// `(display, short)` names of an index row: the known ones, else title case and the Kite
/// name.
fn index_names(r: &Row) -> (String, String) {
    if let Some((_, d, s)) = INDEX_NAMES.iter().find(|(k, _, _)| *k == r.symbol) {
        return (d.to_string(), s.to_string());
    }
    let title = r
        .symbol
        .split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| {
                f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join(" ");
    (title, r.name.to_ascii_uppercase())
}

/// `(day, month index 0-11, year)` of `YYYY-MM-DD`.
fn expiry_parts(e: &str) -> Option<(u32, usize, u32)> {
    let mut it = e.split('-');
    let y: u32 = it.next()?.parse().ok()?;
    let m: usize = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    (1..=12).contains(&m).then_some((d, m - 1, y))
}

/// `24NOV26`.
fn ddmmmyy(e: &str) -> String {
    expiry_parts(e).map_or_else(String::new, |(d, m, y)| {
        format!("{d:02}{}{:02}", MONTHS[m], y % 100)
    })
}

/// Strike as traders write it: `26100`, `88.5`.
fn strike_text(s: &str) -> String {
    match s.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 => format!("{}", v as i64),
        Ok(v) => format!("{v}"),
        Err(_) => s.to_string(),
    }
}

fn is_option(r: &Row) -> bool {
    matches!(r.kind.as_str(), "CE" | "PE")
}

fn underlying(r: &Row) -> String {
    let n = r.name.to_ascii_uppercase();
    if n.is_empty() { r.symbol.clone() } else { n }
}

/// Angel's `symbol` of a row.
pub(crate) fn angel_symbol(r: &Row) -> String {
    if r.index {
        return index_names(r).0;
    }
    match r.kind.as_str() {
        "FUT" => format!("{}{}FUT", underlying(r), ddmmmyy(&r.expiry)),
        "CE" | "PE" => format!(
            "{}{}{}{}",
            underlying(r),
            ddmmmyy(&r.expiry),
            strike_text(&r.strike),
            r.kind
        ),
        _ if r.exchange == "NSE" => format!("{}-EQ", r.symbol),
        _ => r.symbol.clone(),
    }
}

/// Noren's `TradingSymbol` (`tsym`, the `ts` of a `tk`) of a row.
pub(crate) fn noren_symbol(r: &Row) -> String {
    if r.index {
        return index_names(r).0;
    }
    match r.kind.as_str() {
        "FUT" => format!("{}{}F", underlying(r), ddmmmyy(&r.expiry)),
        "CE" | "PE" => format!(
            "{}{}{}{}",
            underlying(r),
            ddmmmyy(&r.expiry),
            &r.kind[..1],
            strike_text(&r.strike)
        ),
        _ if r.exchange == "NSE" => format!("{}-EQ", r.symbol),
        _ => r.symbol.clone(),
    }
}

/// The short name (`name` in Angel's master, `Symbol` in Noren's).
pub(crate) fn short_name(r: &Row) -> String {
    if r.index {
        index_names(r).1
    } else if r.kind == "EQ" || r.kind.is_empty() {
        r.symbol.clone()
    } else {
        underlying(r)
    }
}

/// Instrument type as the brokers classify it (`OPTIDX`, `FUTSTK`, `FUTCUR`, …; Noren `EQ`
/// and `INDEX` for cash rows, Angel `` and `AMXIDX`).
fn instrument_type(r: &Row, angel_style: bool) -> String {
    if r.index {
        return if angel_style { "AMXIDX" } else { "INDEX" }.into();
    }
    let idx = INDEX_UNDERLYINGS.contains(&underlying(r).as_str());
    let opt = is_option(r);
    match (r.exchange.as_str(), r.kind.as_str()) {
        (_, "EQ") | (_, "") => if angel_style { "" } else { "EQ" }.into(),
        ("CDS" | "BCD", _) => if opt { "OPTCUR" } else { "FUTCUR" }.into(),
        ("MCX", _) => if opt { "OPTFUT" } else { "FUTCOM" }.into(),
        _ => match (opt, idx) {
            (true, true) => "OPTIDX",
            (true, false) => "OPTSTK",
            (false, true) => "FUTIDX",
            (false, false) => "FUTSTK",
        }
        .into(),
    }
}

/// A price-like decimal in an exchange type's wire units with six decimals (`5.000000`).
fn angel_units(rupees_text: &str, exchange_type: u8) -> String {
    let p = rupees_text
        .parse::<f64>()
        .ok()
        .map_or(Price(0), Price::from_f64);
    let raw = p.to_raw(angel::divisor(exchange_type));
    format!("{raw}.000000")
}

/// One Angel master entry.
fn angel_entry(r: &Row, key: FeedKey) -> Value {
    let et = u8::try_from(key.seg).unwrap_or(0);
    let strike = if r.index {
        "0.000000".to_string()
    } else if is_option(r) {
        angel_units(&r.strike, et)
    } else {
        "-1.000000".to_string()
    };
    let expiry = expiry_parts(&r.expiry)
        .map_or_else(String::new, |(d, m, y)| format!("{d:02}{}{y}", MONTHS[m]));
    json!({
        "token": key.token.to_string(),
        "symbol": angel_symbol(r),
        "name": short_name(r),
        "expiry": expiry,
        "strike": strike,
        "lotsize": r.lot.to_string(),
        "instrumenttype": instrument_type(r, true),
        "exch_seg": angel::exchange_name(et).unwrap_or(""),
        "tick_size": if r.index { "0.000000".to_string() } else { angel_units(&r.tick_text, et) },
    })
}

/// `OpenAPIScripMaster.json`: every row Angel can serve, in CSV order.
pub(crate) fn angel_master(ins: &Instruments) -> String {
    let all: Vec<Value> = ins
        .rows()
        .iter()
        .filter_map(|r| r.angel.map(|k| angel_entry(r, k)))
        .collect();
    Value::Array(all).to_string()
}

/// Exchanges whose Noren master has the derivative columns.
fn derivative_exchange(ex: &str) -> bool {
    !matches!(ex, "NSE" | "BSE")
}

/// `{EXCH}_symbols.txt` for one Noren exchange (`None`: not a Noren exchange). The header is
/// always there, even when no row belongs to the exchange.
pub(crate) fn noren_master(ins: &Instruments, exchange: &str) -> Option<String> {
    let seg = noren::seg_of(exchange)?;
    let deriv = derivative_exchange(exchange);
    let mut s = String::from(if deriv {
        "Exchange,Token,LotSize,Symbol,TradingSymbol,Expiry,Instrument,OptionType,StrikePrice,TickSize,\n"
    } else {
        "Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,\n"
    });
    let pp = noren::default_precision(seg);
    for r in ins.rows() {
        let Some(k) = r.noren.filter(|k| k.seg == seg) else {
            continue;
        };
        let tick = ins
            .params(r.token)
            .map_or_else(String::new, |p| noren::format_price(Price(p.tick), pp));
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{exchange},{},{},{},{},",
            k.token,
            r.lot,
            short_name(r),
            noren_symbol(r)
        );
        if deriv {
            let expiry = expiry_parts(&r.expiry)
                .map_or_else(String::new, |(d, m, y)| format!("{d:02}-{}-{y}", MONTHS[m]));
            let (otype, strike) = if is_option(r) {
                (r.kind.as_str(), strike_text(&r.strike))
            } else {
                ("XX", "0".to_string())
            };
            let _ = write!(
                s,
                "{expiry},{},{otype},{strike},",
                instrument_type(r, false)
            );
        } else {
            let _ = write!(s, "{},", instrument_type(r, false));
        }
        let _ = writeln!(s, "{tick},");
    }
    Some(s)
}

/// The zip the brokers serve: one deflated member `{EXCH}_symbols.txt`.
pub(crate) fn zip_one(name: &str, text: &str) -> std::io::Result<Vec<u8>> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file(name, opts).map_err(std::io::Error::other)?;
    z.write_all(text.as_bytes())?;
    Ok(z.finish().map_err(std::io::Error::other)?.into_inner())
}

/// Noren's instrument name (`instname`) of a Kite token (synthetic instruments: `OPTIDX`).
pub(crate) fn noren_instrument(ins: &Instruments, token: u32) -> String {
    ins.row(token)
        .map_or_else(|| "OPTIDX".to_string(), |r| instrument_type(r, false))
}

/// Symbol of a Kite token on a broker family's wire (synthetic instruments: `SYNTH<n>`).
pub(crate) fn symbol_of(ins: &Instruments, token: u32, angel_style: bool) -> String {
    match ins.row(token) {
        Some(r) if angel_style => angel_symbol(r),
        Some(r) => noren_symbol(r),
        None => format!("SYNTH{}", (token >> 8).saturating_sub(0x1_0000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins() -> Instruments {
        Instruments::parse(crate::sim::EMBEDDED_INSTRUMENTS.to_string()).unwrap()
    }

    #[test]
    fn angel_master_entries_look_like_angels() {
        let v: Value = serde_json::from_str(&angel_master(&ins())).unwrap();
        let all = v.as_array().unwrap();
        let find = |t: &str| all.iter().find(|e| e["token"] == t).unwrap().clone();
        let infy = find("1594");
        assert_eq!(infy["symbol"], "INFY-EQ");
        assert_eq!(infy["exch_seg"], "NSE");
        assert_eq!(infy["tick_size"], "5.000000");
        assert_eq!(infy["strike"], "-1.000000");
        let nifty = find("99926000");
        assert_eq!(
            (&nifty["symbol"], &nifty["name"]),
            (&json!("Nifty 50"), &json!("NIFTY"))
        );
        assert_eq!(nifty["instrumenttype"], "AMXIDX");
        let ce = find("38007");
        assert_eq!(ce["symbol"], "NIFTY24NOV2626100CE");
        assert_eq!(ce["expiry"], "24NOV2026");
        assert_eq!(ce["strike"], "2610000.000000");
        assert_eq!(ce["instrumenttype"], "OPTIDX");
        assert_eq!(find("4101")["tick_size"], "25000.000000");
        assert!(all.iter().all(|e| e["exch_seg"] != "BCD"));
    }

    #[test]
    fn noren_masters_look_like_shoonyas() {
        let i = ins();
        let nse = noren_master(&i, "NSE").unwrap();
        assert!(
            nse.starts_with("Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,\n")
        );
        assert!(
            nse.contains("\nNSE,1594,1,INFY,INFY-EQ,EQ,0.05,\n"),
            "{nse}"
        );
        assert!(nse.contains("\nNSE,26000,1,NIFTY,Nifty 50,INDEX,0.05,\n"));
        let nfo = noren_master(&i, "NFO").unwrap();
        assert!(
            nfo.contains(
                "\nNFO,38007,75,NIFTY,NIFTY24NOV26C26100,24-NOV-2026,OPTIDX,CE,26100,0.05,\n"
            ),
            "{nfo}"
        );
        assert!(nfo.contains("\nNFO,38001,75,NIFTY,NIFTY24NOV26F,24-NOV-2026,FUTIDX,XX,0,0.05,\n"));
        let cds = noren_master(&i, "CDS").unwrap();
        assert!(cds.contains(",USDINR26NOV26P88.5,"), "{cds}");
        assert!(cds.contains(",0.0025,\n"));
        assert_eq!(noren_master(&i, "NCX").unwrap().lines().count(), 1);
        assert!(noren_master(&i, "XYZ").is_none());
    }
}
