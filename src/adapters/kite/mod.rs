//! Zerodha Kite Connect adapter: the codec plus Kite's description (query-string auth, limits,
//! REST token check and instrument master).

pub mod codec;

use super::{
    Adapter, CodecError, Credentials, Decoder, Endpoints, Inbound, Limits, RestRequest, TokenCheck,
    WsOut,
};
use crate::model::{FeedKey, Instrument, Mode, Tick};
use std::time::Duration;

/// Kite's limits: 3000 instruments per connection (docs); batches of 500 keep frames small.
pub const LIMITS: Limits = Limits {
    max_instruments: 3000,
    batch: 500,
};

/// The Kite adapter.
#[derive(Debug, Default, Clone)]
pub struct Kite;

struct KiteDecoder;

impl Decoder for KiteDecoder {
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        let info = codec::decode_frame(data, out)?;
        Ok(if info.heartbeat {
            Inbound::Heartbeat
        } else {
            Inbound::Ticks {
                skipped: info.skipped,
            }
        })
    }

    fn text(&mut self, data: &str, _out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        Ok(match codec::decode_text(data)? {
            codec::TextMessage::Error(e) => Inbound::ServerError(e),
            codec::TextMessage::Message(m) => Inbound::Notice(m),
            codec::TextMessage::Order(_) => Inbound::Ignored,
        })
    }
}

fn kite_mode(m: Mode) -> Mode {
    m
}

fn tokens(keys: &[FeedKey]) -> Vec<u32> {
    keys.iter().map(|k| k.token).collect()
}

impl Adapter for Kite {
    fn name(&self) -> &'static str {
        "kite"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn transport_timeout(&self) -> Duration {
        // Kite sends a heartbeat every second or two when idle.
        Duration::from_secs(3)
    }

    fn ws_url(&self, ep: &Endpoints, creds: &Credentials) -> String {
        let root = ep.ws_url.trim_end_matches('/');
        format!(
            "{root}/?api_key={}&access_token={}",
            url_encode(creds.api_key.expose()),
            url_encode(creds.access_token.expose())
        )
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(KiteDecoder)
    }

    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        let mut out = Vec::new();
        for (mode, keys) in groups {
            for chunk in keys.chunks(LIMITS.batch) {
                let t = tokens(chunk);
                out.push(WsOut::Text(codec::encode_subscribe(&t)));
                // Kite defaults a new subscription to quote; always state the mode we want.
                out.push(WsOut::Text(codec::encode_mode(kite_mode(*mode), &t)));
            }
        }
        out
    }

    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        let mut out = Vec::new();
        for (mode, keys) in groups {
            for chunk in keys.chunks(LIMITS.batch) {
                out.push(WsOut::Text(codec::encode_mode(
                    kite_mode(*mode),
                    &tokens(chunk),
                )));
            }
        }
        out
    }

    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut> {
        keys.chunks(LIMITS.batch)
            .map(|c| WsOut::Text(codec::encode_unsubscribe(&tokens(c))))
            .collect()
    }

    fn raw_key(&self, _exchange: &str, token: u32) -> Option<FeedKey> {
        Some(FeedKey::kite(token))
    }

    fn parse_instruments(&self, text: &str) -> Result<Vec<Instrument>, String> {
        parse_instrument_csv(text)
    }

    fn instrument_requests(&self, ep: &Endpoints, creds: &Credentials) -> Vec<RestRequest> {
        let root = ep.instruments_url.as_deref().unwrap_or(&ep.rest_url);
        vec![RestRequest::get(
            format!("{}/instruments", root.trim_end_matches('/')),
            rest_headers(creds),
        )]
    }

    fn token_check_request(&self, ep: &Endpoints, creds: &Credentials) -> Option<RestRequest> {
        Some(RestRequest::get(
            format!("{}/user/profile", ep.rest_url.trim_end_matches('/')),
            rest_headers(creds),
        ))
    }

    fn token_check_response(&self, status: u16, body: &str) -> TokenCheck {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        match status {
            200 => TokenCheck::Valid(
                v.pointer("/data/user_id")
                    .and_then(|u| u.as_str())
                    .unwrap_or("?")
                    .to_string(),
            ),
            403 | 401 => TokenCheck::Invalid(format!(
                "{} ({}): generate a new access token (Kite tokens expire at 06:00 IST)",
                v.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("token rejected"),
                v.get("error_type")
                    .and_then(|m| m.as_str())
                    .unwrap_or("HTTP 403"),
            )),
            s => TokenCheck::Unknown(format!("token check answered HTTP {s}")),
        }
    }
}

/// Kite's REST headers: version and `token api_key:access_token`.
fn rest_headers(creds: &Credentials) -> Vec<(String, String)> {
    vec![
        ("X-Kite-Version".into(), "3".into()),
        (
            "Authorization".into(),
            format!(
                "token {}:{}",
                creds.api_key.expose(),
                creds.access_token.expose()
            ),
        ),
    ]
}

/// Percent-encode a query value (tokens are alphanumeric in practice; be safe anyway).
fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parse Kite's instrument master CSV (`instrument_token,exchange_token,tradingsymbol,name,
/// last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange`).
pub fn parse_instrument_csv(text: &str) -> Result<Vec<Instrument>, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("instrument master is empty")?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let idx = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("instrument master: no {name:?} column"))
    };
    let (it, ts, ex) = (
        idx("instrument_token")?,
        idx("tradingsymbol")?,
        idx("exchange")?,
    );
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: usize| {
            f.get(i)
                .map(|s| s.trim().trim_matches('"'))
                .ok_or_else(|| format!("instrument master line {}: too few columns", n + 2))
        };
        let token: u32 = get(it)?
            .parse()
            .map_err(|_| format!("instrument master line {}: bad instrument_token", n + 2))?;
        out.push(Instrument {
            exchange: get(ex)?.to_ascii_uppercase(),
            symbol: get(ts)?.to_ascii_uppercase(),
            key: FeedKey::kite(token),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn url_carries_credentials_in_query() {
        let c = Credentials {
            api_key: Secret::new("key123456"),
            access_token: Secret::new("tok+/987654"),
            ..Default::default()
        };
        let ep = Endpoints::new("ws://127.0.0.1:9/", "");
        assert_eq!(
            Kite.ws_url(&ep, &c),
            "ws://127.0.0.1:9/?api_key=key123456&access_token=tok%2B%2F987654"
        );
    }

    #[test]
    fn csv_parses_and_reports_bad_lines() {
        let csv = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange\n408065,1594,INFY,INFOSYS,0,,,0.05,1,EQ,NSE,NSE\n256265,1001,NIFTY 50,NIFTY 50,0,,,0,0,EQ,INDICES,NSE\n";
        let v = parse_instrument_csv(csv).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].symbol, "NIFTY 50");
        assert_eq!(
            v[1].key,
            FeedKey {
                seg: 9,
                token: 256265
            }
        );
        assert!(
            parse_instrument_csv("instrument_token,tradingsymbol,exchange\nx,INFY,NSE").is_err()
        );
        assert!(parse_instrument_csv("").is_err());
    }

    #[test]
    fn token_check_maps_403_to_invalid() {
        let body = r#"{"status":"error","message":"Incorrect `api_key` or `access_token`.","data":null,"error_type":"TokenException"}"#;
        assert!(matches!(
            Kite.token_check_response(403, body),
            TokenCheck::Invalid(_)
        ));
        assert!(matches!(
            Kite.token_check_response(200, r#"{"data":{"user_id":"AB1234"}}"#),
            TokenCheck::Valid(u) if u == "AB1234"
        ));
        assert!(matches!(
            Kite.token_check_response(502, ""),
            TokenCheck::Unknown(_)
        ));
    }
}
