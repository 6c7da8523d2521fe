//! Text formatting for the TUI: prices, quantities, ages, the IST clock and market phase.
//! Pure functions, so views and tests agree on every string.

use crate::model::{FeedKey, Price};
use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Asia::Kolkata;
use ratatui::text::Span;

/// Decimals shown for an instrument: 4 for currency derivatives (Kite segment 3 = CDS,
/// 6 = BCD, or exchange CDS/BCD), else 2.
pub fn decimals(exchange: &str, key: FeedKey) -> usize {
    if matches!(exchange, "CDS" | "BCD") || key.seg == 3 || key.seg == 6 {
        4
    } else {
        2
    }
}

/// A price with `dec` decimals.
pub fn price(p: Price, dec: usize) -> String {
    format!("{:.*}", dec, p.to_f64())
}

/// Thousands separators: 1234567 → "1,234,567".
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Quantity in Indian units, compact: 98,765 / 12.35L / 1.23Cr.
pub fn qty(n: u64) -> String {
    if n < 100_000 {
        grouped(n)
    } else if n < 10_000_000 {
        format!("{:.2}L", n as f64 / 100_000.0)
    } else {
        format!("{:.2}Cr", n as f64 / 10_000_000.0)
    }
}

/// Direction of a percent change after rounding to what is shown (so "-0.00" never shows).
pub fn change_dir(pct: f64) -> std::cmp::Ordering {
    let r = (pct * 100.0).round();
    if r > 0.0 {
        std::cmp::Ordering::Greater
    } else if r < 0.0 {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Equal
    }
}

/// Change with arrow and sign: "▲ +1.23%", "▼ -0.45%", "  0.00%".
pub fn change(pct: f64) -> String {
    match change_dir(pct) {
        std::cmp::Ordering::Greater => format!("▲ +{:.2}%", pct.abs()),
        std::cmp::Ordering::Less => format!("▼ -{:.2}%", pct.abs()),
        std::cmp::Ordering::Equal => "  0.00%".to_string(),
    }
}

/// Compact age: "0.3s", "12s", "4m", "2h", "3d".
pub fn age(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{}m", ms / 60_000)
    } else if ms < 86_400_000 {
        format!("{}h", ms / 3_600_000)
    } else {
        format!("{}d", ms / 86_400_000)
    }
}

/// Age for the health pane: "never", "850 ms", "4.2 s", "3m 5s".
pub fn age_long(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// "HH:MM:SS" in IST for a Unix-ms instant ("--:--:--" when out of range).
pub fn ist_hms(unix_ms: i64) -> String {
    Kolkata
        .timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

/// NSE cash-market phase at `now`, from the IST clock (weekends closed; exchange holidays are
/// not known here).
pub fn market_phase(now: DateTime<Utc>) -> &'static str {
    let t = now.with_timezone(&Kolkata);
    if matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
        return "market closed";
    }
    let m = t.hour() * 60 + t.minute();
    match m {
        m if m < 9 * 60 => "market closed",
        m if m < 9 * 60 + 15 => "pre-open",
        m if m < 15 * 60 + 30 => "market open",
        m if m < 16 * 60 => "post-close",
        _ => "market closed",
    }
}

/// Display width of a string in terminal cells.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Cut `s` to `w` cells, ending in "…" when cut.
pub fn fit(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let cw = width(c.encode_utf8(&mut buf));
        if used + cw > w - 1 {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ages() {
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(qty(98_765), "98,765");
        assert_eq!(qty(1_235_000), "12.35L");
        assert_eq!(qty(123_000_000), "12.30Cr");
        assert_eq!(change(1.234), "▲ +1.23%");
        assert_eq!(change(-0.004), "  0.00%");
        assert_eq!(change(-0.45), "▼ -0.45%");
        assert_eq!(age(300), "0.3s");
        assert_eq!(age(75_000), "1m");
        assert_eq!(age_long(Some(4200)), "4.2 s");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(price(Price::from_raw(832512500, 10_000_000), 4), "83.2512");
    }

    #[test]
    fn phases_in_ist_whatever_the_host_zone() {
        // 2025-01-06 is a Monday; 04:00 UTC = 09:30 IST.
        let t = Utc.with_ymd_and_hms(2025, 1, 6, 4, 0, 0).unwrap();
        assert_eq!(market_phase(t), "market open");
        assert_eq!(ist_hms(t.timestamp_millis()), "09:30:00");
        let t = Utc.with_ymd_and_hms(2025, 1, 6, 3, 35, 0).unwrap();
        assert_eq!(market_phase(t), "pre-open");
        let t = Utc.with_ymd_and_hms(2025, 1, 5, 4, 0, 0).unwrap();
        assert_eq!(market_phase(t), "market closed");
    }
}
