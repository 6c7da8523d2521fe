//! Angel One SmartAPI WebSocket 2.0 adapter: the pure codec (binary little-endian packets,
//! text frames and requests, both directions) and Angel's description: four auth headers on
//! the upgrade, text `ping` keepalive, 1000 tokens per session, the JSON scrip master and the
//! `getProfile` token check (brokers.md §2).

pub mod codec;

use super::{
    Adapter, Credentials, Decoder, Endpoints, ErrorKind, Limits, RestRequest, TokenCheck, WsOut,
};
use crate::model::{FeedKey, Instrument, Mode};
use codec::AngelMode;
use std::time::Duration;

/// Angel's production WebSocket URL.
pub const WS_URL: &str = "wss://smartapisocket.angelone.in/smart-stream";
/// Angel's production REST root.
pub const REST_URL: &str = "https://apiconnect.angelone.in";
/// The public scrip master.
pub const INSTRUMENTS_URL: &str =
    "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json";

/// 1000 token subscriptions per session (brokers.md §2.1).
pub const LIMITS: Limits = Limits {
    max_instruments: codec::MAX_TOKENS,
    batch: codec::MAX_TOKENS,
};

/// Our keepalive: text `ping` (answered with text `pong`), often enough that a silent
/// connection is noticed within the transport timeout.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The Angel adapter.
#[derive(Debug, Default, Clone)]
pub struct Angel;

/// `Bearer <jwt>` whether or not the token came with the prefix (SmartConnect's does).
fn bearer(jwt: &str) -> String {
    let t = jwt.trim();
    if t.len() > 7 && t[..7].eq_ignore_ascii_case("bearer ") {
        t.to_string()
    } else {
        format!("Bearer {t}")
    }
}

/// A request encoder of the codec (subscribe or unsubscribe).
type Encode = fn(Option<&str>, AngelMode, &[FeedKey]) -> Result<Vec<String>, codec::RequestError>;

/// Messages for one request kind; keys Angel cannot take (unknown segment) are logged and
/// left out rather than failing the whole batch.
fn requests(f: Encode, mode: AngelMode, keys: &[FeedKey]) -> Vec<WsOut> {
    match f(None, mode, keys) {
        Ok(v) => v.into_iter().map(WsOut::Text).collect(),
        Err(e) => {
            tracing::warn!("angel: {e}; sending the other keys");
            let ok: Vec<FeedKey> = keys
                .iter()
                .copied()
                .filter(|k| f(None, mode, std::slice::from_ref(k)).is_ok())
                .collect();
            f(None, mode, &ok)
                .map(|v| v.into_iter().map(WsOut::Text).collect())
                .unwrap_or_default()
        }
    }
}

/// The modes a key may be subscribed in (an unsubscribe names the mode; Angel ignores
/// unsubscribing what is not subscribed).
const MODES: [AngelMode; 3] = [AngelMode::Ltp, AngelMode::Quote, AngelMode::SnapQuote];

impl Adapter for Angel {
    fn name(&self) -> &'static str {
        "angel"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn transport_timeout(&self) -> Duration {
        // Two missed pongs, and then some.
        Duration::from_secs(12)
    }

    fn ws_url(&self, ep: &Endpoints, _creds: &Credentials) -> String {
        ep.ws_url.clone()
    }

    fn ws_headers(&self, c: &Credentials) -> Vec<(String, String)> {
        vec![
            ("Authorization".into(), bearer(c.access_token.expose())),
            ("x-api-key".into(), c.api_key.expose().to_string()),
            ("x-client-code".into(), c.client_code.clone()),
            ("x-feed-token".into(), c.feed_token.expose().to_string()),
        ]
    }

    fn classify_rejection(&self, status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::Auth,
            // More than 3 connections per client code.
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Other,
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(codec::AngelDecoder::new())
    }

    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        groups
            .iter()
            .flat_map(|(m, keys)| requests(codec::encode_subscribe, AngelMode::for_mode(*m), keys))
            .collect()
    }

    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        // Angel keeps a token in every mode it was subscribed in: subscribe the new mode,
        // then drop the others (no gap in between).
        let mut out = Vec::new();
        for (m, keys) in groups {
            let new = AngelMode::for_mode(*m);
            out.extend(requests(codec::encode_subscribe, new, keys));
            for old in MODES.into_iter().filter(|o| *o != new) {
                out.extend(requests(codec::encode_unsubscribe, old, keys));
            }
        }
        out
    }

    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut> {
        MODES
            .into_iter()
            .flat_map(|m| requests(codec::encode_unsubscribe, m, keys))
            .collect()
    }

    fn keepalive(&self) -> Option<(Duration, WsOut)> {
        Some((PING_EVERY, WsOut::Text(codec::PING.to_string())))
    }

    fn instrument_requests(&self, ep: &Endpoints, _creds: &Credentials) -> Vec<RestRequest> {
        let url = ep
            .instruments_url
            .clone()
            .unwrap_or_else(|| INSTRUMENTS_URL.to_string());
        vec![RestRequest::get(url, Vec::new())]
    }

    fn raw_key(&self, exchange: &str, token: u32) -> Option<FeedKey> {
        let (_, seg) = segment(exchange)?;
        Some(FeedKey {
            seg: u16::from(seg),
            token,
        })
    }

    fn parse_instruments(&self, text: &str) -> Result<Vec<Instrument>, String> {
        parse_scrip_master(text)
    }

    fn token_check_request(&self, ep: &Endpoints, c: &Credentials) -> Option<RestRequest> {
        Some(RestRequest::get(
            format!(
                "{}/rest/secure/angelbroking/user/v1/getProfile",
                ep.rest_url.trim_end_matches('/')
            ),
            rest_headers(c),
        ))
    }

    fn token_check_response(&self, status: u16, body: &str) -> TokenCheck {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let code = v["errorcode"].as_str().unwrap_or("");
        let msg = v["message"].as_str().unwrap_or("");
        if status == 200 && v["status"] == true {
            return TokenCheck::Valid(v["data"]["clientcode"].as_str().unwrap_or("?").to_string());
        }
        if matches!(code, "AG8001" | "AG8002" | "AG8003") || matches!(status, 401 | 403) {
            let why = if msg.is_empty() {
                "token rejected"
            } else {
                msg
            };
            let code = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code.to_string()
            };
            return TokenCheck::Invalid(format!(
                "{why} ({code}): log in again (generateSession) and write the new JWT and feed token"
            ));
        }
        TokenCheck::Unknown(format!("getProfile answered HTTP {status} {code} {msg}"))
    }
}

/// SmartConnect's REST headers (brokers.md §2.6).
fn rest_headers(c: &Credentials) -> Vec<(String, String)> {
    vec![
        ("Authorization".into(), bearer(c.access_token.expose())),
        ("Content-Type".into(), "application/json".into()),
        ("Accept".into(), "application/json".into()),
        ("X-UserType".into(), "USER".into()),
        ("X-SourceID".into(), "WEB".into()),
        ("X-ClientLocalIP".into(), "127.0.0.1".into()),
        ("X-ClientPublicIP".into(), "127.0.0.1".into()),
        ("X-MACAddress".into(), "00:00:00:00:00:00".into()),
        ("X-PrivateKey".into(), c.api_key.expose().to_string()),
    ]
}

/// The exchange users type for an Angel `exch_seg`, and its SmartAPI exchange type.
fn segment(exch_seg: &str) -> Option<(&'static str, u8)> {
    Some(match exch_seg {
        "NSE" => ("NSE", codec::NSE_CM),
        "NFO" => ("NFO", codec::NSE_FO),
        "BSE" => ("BSE", codec::BSE_CM),
        "BFO" => ("BFO", codec::BSE_FO),
        "MCX" => ("MCX", codec::MCX_FO),
        "NCDEX" | "NCO" => ("NCDEX", codec::NCX_FO),
        "CDS" => ("CDS", codec::CDE_FO),
        _ => return None,
    })
}

/// Parse `OpenAPIScripMaster.json`: `[{token, symbol, name, exch_seg, ...}]`. Cash symbols
/// carry a series suffix (`INFY-EQ`); they resolve both as `NSE:INFY` and `NSE:INFY-EQ`.
pub fn parse_scrip_master(text: &str) -> Result<Vec<Instrument>, String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("scrip master is not a JSON array: {e}"))?;
    let mut out = Vec::with_capacity(v.len() + v.len() / 4);
    for (i, row) in v.iter().enumerate() {
        let field = |k: &str| row.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let Some((exchange, seg)) = segment(field("exch_seg")) else {
            continue; // segments SmartAPI streams nothing for
        };
        let token: u32 = field("token")
            .parse()
            .map_err(|_| format!("scrip master entry {i}: bad token {:?}", field("token")))?;
        let symbol = field("symbol").trim().to_ascii_uppercase();
        if symbol.is_empty() {
            return Err(format!("scrip master entry {i}: no symbol"));
        }
        let key = FeedKey {
            seg: u16::from(seg),
            token,
        };
        if matches!(exchange, "NSE" | "BSE")
            && let Some(base) = symbol.strip_suffix("-EQ")
        {
            out.push(Instrument {
                exchange: exchange.into(),
                symbol: base.to_string(),
                key,
            });
        }
        out.push(Instrument {
            exchange: exchange.into(),
            symbol,
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn headers_take_the_jwt_with_or_without_bearer() {
        let mut c = Credentials {
            api_key: Secret::new("key123456"),
            access_token: Secret::new("eyJhbGciOi.jwt"),
            client_code: "A123".into(),
            feed_token: Secret::new("feed123456"),
        };
        let h = Angel.ws_headers(&c);
        assert_eq!(
            h[0],
            ("Authorization".into(), "Bearer eyJhbGciOi.jwt".into())
        );
        assert_eq!(h[2], ("x-client-code".into(), "A123".into()));
        c.access_token = Secret::new("Bearer eyJhbGciOi.jwt");
        assert_eq!(Angel.ws_headers(&c)[0].1, "Bearer eyJhbGciOi.jwt");
    }

    #[test]
    fn master_parses_cash_aliases_indices_and_skips_unknown_segments() {
        let j = r#"[
          {"token":"1594","symbol":"INFY-EQ","name":"INFY","exch_seg":"NSE"},
          {"token":"99926000","symbol":"Nifty 50","name":"NIFTY","exch_seg":"NSE"},
          {"token":"35001","symbol":"NIFTY25DECFUT","name":"NIFTY","exch_seg":"NFO"},
          {"token":"1","symbol":"X","name":"X","exch_seg":"XYZ"}
        ]"#;
        let v = parse_scrip_master(j).unwrap();
        let names: Vec<String> = v.iter().map(Instrument::display_name).collect();
        assert_eq!(
            names,
            [
                "NSE:INFY",
                "NSE:INFY-EQ",
                "NSE:NIFTY 50",
                "NFO:NIFTY25DECFUT"
            ]
        );
        assert_eq!(
            v[0].key,
            FeedKey {
                seg: 1,
                token: 1594
            }
        );
        assert_eq!(
            v[3].key,
            FeedKey {
                seg: 2,
                token: 35001
            }
        );
        assert!(parse_scrip_master("{}").is_err());
        assert!(parse_scrip_master(r#"[{"token":"x","symbol":"A","exch_seg":"NSE"}]"#).is_err());
    }

    #[test]
    fn mode_change_subscribes_the_new_mode_then_drops_the_others() {
        let k = [FeedKey {
            seg: 1,
            token: 1594,
        }];
        let out = Angel.set_mode(&[(Mode::Depth, k.to_vec())]);
        let texts: Vec<String> = out
            .iter()
            .map(|m| match m {
                WsOut::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts.len(), 3);
        assert!(texts[0].contains(r#""action":1"#) && texts[0].contains(r#""mode":3"#));
        assert!(texts[1..].iter().all(|t| t.contains(r#""action":0"#)));
        assert_eq!(Angel.unsubscribe(&k).len(), 3);
    }

    #[test]
    fn token_check_maps_ag_codes_to_invalid() {
        let ok =
            r#"{"status":true,"message":"SUCCESS","errorcode":"","data":{"clientcode":"A123"}}"#;
        assert_eq!(
            Angel.token_check_response(200, ok),
            TokenCheck::Valid("A123".into())
        );
        let bad = r#"{"status":false,"message":"Invalid Token","errorcode":"AG8001","data":null}"#;
        for status in [200, 401] {
            assert!(
                matches!(Angel.token_check_response(status, bad), TokenCheck::Invalid(m) if m.contains("AG8001"))
            );
        }
        assert!(matches!(
            Angel.token_check_response(502, ""),
            TokenCheck::Unknown(_)
        ));
    }
}
