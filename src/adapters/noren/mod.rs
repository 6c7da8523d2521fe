//! NorenOMS adapter (Shoonya / Flattrade and other Noren brokers): the pure codec (JSON text
//! frames with string values, snapshot + delta merging, both directions) and the brokers'
//! description: a login message answered by `ck`/`ak` before anything is subscribed, ping
//! frames as keepalive, touchline and depth feeds, the zipped symbol masters, the `Limits`
//! token check, and the keep-session idle policy (Flattrade rejects reconnects for a while
//! after a close; brokers.md §3, design.md).

pub mod codec;

use super::{
    Adapter, CodecError, Credentials, Decoder, Endpoints, HttpMethod, Inbound, Limits, RestRequest,
    TokenCheck, WsOut,
};
use crate::engine::IdlePolicy;
use crate::model::{FeedKey, Instrument, Mode, Tick};
use codec::{Feed, Flavour, NorenMessage};
use std::time::Duration;

/// Scrips per connection: Noren documents none; OpenAlgo's registry caps at 5000. We keep
/// Kite's 3000 so a subscription that works on one broker works on every one.
pub const LIMITS: Limits = Limits {
    max_instruments: 3000,
    batch: codec::MAX_KEYS_PER_MESSAGE,
};

/// The official clients ping every 3 s (payload `{"t":"h"}`); the server only pongs.
const PING_EVERY: Duration = Duration::from_secs(3);

/// Exchanges whose symbol masters are fetched (`<root>/<EX>_symbols.txt.zip`).
pub const MASTER_EXCHANGES: [&str; 6] = ["NSE", "NFO", "BSE", "BFO", "CDS", "MCX"];

/// A Noren broker.
#[derive(Debug, Clone)]
pub struct Noren {
    name: &'static str,
    flavour: Flavour,
}

impl Noren {
    /// Shoonya (Finvasia): classic login with `susertoken`.
    pub fn shoonya() -> Noren {
        Noren {
            name: "shoonya",
            flavour: Flavour::Classic,
        }
    }

    /// Flattrade: login with `accesstoken`, `ck` or `ak` acknowledges.
    pub fn flattrade() -> Noren {
        Noren {
            name: "flattrade",
            flavour: Flavour::Flattrade,
        }
    }

    /// The protocol flavour.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }
}

/// Shoonya's production URLs: WebSocket, REST root, and the symbol masters' root.
pub const SHOONYA_URLS: (&str, &str, &str) = (
    "wss://api.shoonya.com/NorenWSTP/",
    "https://api.shoonya.com/NorenWClientTP/",
    "https://api.shoonya.com/",
);
/// Flattrade's production URLs. Noren masters list exchange tokens, the same for every Noren
/// broker, so Shoonya's public files serve Flattrade too (override `instruments_url`).
pub const FLATTRADE_URLS: (&str, &str, &str) = (
    "wss://piconnect.flattrade.in/PiConnectWSAPI/",
    "https://piconnect.flattrade.in/PiConnectAPI/",
    "https://api.shoonya.com/",
);

/// The engine's view of the codec: the login ack and its refusal are their own events.
struct NorenFeed(codec::NorenDecoder);

impl Decoder for NorenFeed {
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        self.0.binary(data, out)
    }

    fn text(&mut self, data: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        let before = out.len();
        Ok(match self.0.decode(data, out)? {
            NorenMessage::Connected { .. } => Inbound::LoginOk,
            NorenMessage::LoginRejected(reason) => Inbound::AuthRejected(format!(
                "{reason} (Not_Ok): log in again and write the new session token"
            )),
            NorenMessage::ConnectStatus(s) => {
                Inbound::ServerError(format!("login answered with status {s:?}, not \"OK\""))
            }
            NorenMessage::Feed(_) => Inbound::Ticks {
                skipped: usize::from(out.len() == before),
            },
            NorenMessage::Heartbeat => Inbound::Heartbeat,
            NorenMessage::UnsubscribeAck { .. }
            | NorenMessage::OrderSubscribeAck
            | NorenMessage::OrderUnsubscribeAck
            | NorenMessage::OrderUpdate(_)
            | NorenMessage::Other(_) => Inbound::Ignored,
        })
    }
}

fn feed_of(m: Mode) -> Feed {
    if m == Mode::Depth {
        Feed::Depth
    } else {
        Feed::Touchline
    }
}

fn texts(r: Result<Vec<String>, codec::UnknownSegment>) -> Vec<WsOut> {
    match r {
        Ok(v) => v.into_iter().map(WsOut::Text).collect(),
        Err(e) => {
            tracing::warn!("noren: segment {} has no Noren exchange", e.0);
            Vec::new()
        }
    }
}

impl Adapter for Noren {
    fn name(&self) -> &'static str {
        self.name
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn transport_timeout(&self) -> Duration {
        // Three pongs missed.
        Duration::from_secs(10)
    }

    fn ws_url(&self, ep: &Endpoints, _creds: &Credentials) -> String {
        ep.ws_url.clone()
    }

    fn login(&self, c: &Credentials) -> Vec<WsOut> {
        vec![WsOut::Text(codec::encode_login(
            self.flavour,
            &c.client_code,
            c.access_token.expose(),
        ))]
    }

    fn login_ack(&self) -> bool {
        true
    }

    fn idle_policy(&self) -> IdlePolicy {
        IdlePolicy::KeepSession
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(NorenFeed(codec::NorenDecoder::new(self.flavour)))
    }

    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        groups
            .iter()
            .flat_map(|(m, keys)| texts(codec::encode_subscribe(feed_of(*m), keys)))
            .collect()
    }

    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        // LTP and Quote share the touchline feed; Depth is the depth feed. Subscribe the
        // new feed first, then drop the other one.
        let mut out = Vec::new();
        for (m, keys) in groups {
            let new = feed_of(*m);
            let old = if new == Feed::Depth {
                Feed::Touchline
            } else {
                Feed::Depth
            };
            out.extend(texts(codec::encode_subscribe(new, keys)));
            out.extend(texts(codec::encode_unsubscribe(old, keys)));
        }
        out
    }

    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut> {
        let mut out = texts(codec::encode_unsubscribe(Feed::Touchline, keys));
        out.extend(texts(codec::encode_unsubscribe(Feed::Depth, keys)));
        out
    }

    fn keepalive(&self) -> Option<(Duration, WsOut)> {
        Some((
            PING_EVERY,
            WsOut::Ping(codec::PING_PAYLOAD.as_bytes().to_vec()),
        ))
    }

    fn instrument_requests(&self, ep: &Endpoints, _creds: &Credentials) -> Vec<RestRequest> {
        let root = ep
            .instruments_url
            .clone()
            .unwrap_or_else(|| match self.flavour {
                Flavour::Flattrade => FLATTRADE_URLS.2.into(),
                _ => SHOONYA_URLS.2.into(),
            });
        MASTER_EXCHANGES
            .iter()
            .map(|ex| {
                RestRequest::get(
                    format!("{}/{ex}_symbols.txt.zip", root.trim_end_matches('/')),
                    Vec::new(),
                )
            })
            .collect()
    }

    fn raw_key(&self, exchange: &str, token: u32) -> Option<FeedKey> {
        Some(FeedKey {
            seg: codec::seg_of(exchange)?,
            token,
        })
    }

    fn parse_instruments(&self, text: &str) -> Result<Vec<Instrument>, String> {
        parse_symbols(text)
    }

    fn token_check_request(&self, ep: &Endpoints, c: &Credentials) -> Option<RestRequest> {
        let uid = serde_json::Value::String(c.client_code.clone());
        let jdata = format!(r#"{{"uid":{uid},"actid":{uid}}}"#);
        let url = format!("{}/Limits", ep.rest_url.trim_end_matches('/'));
        let tok = c.access_token.expose();
        // Raw `jData=...&jKey=...`, not form-encoded, as the official clients send it.
        let (headers, body) = match self.flavour {
            Flavour::OAuth => (
                vec![("Authorization".into(), format!("Bearer {tok}"))],
                format!("jData={jdata}"),
            ),
            Flavour::Classic | Flavour::Flattrade => {
                (Vec::new(), format!("jData={jdata}&jKey={tok}"))
            }
        };
        Some(RestRequest {
            method: HttpMethod::Post,
            url,
            headers,
            body: Some(body),
        })
    }

    fn token_check_response(&self, status: u16, body: &str) -> TokenCheck {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let emsg = v["emsg"].as_str().unwrap_or("");
        match v["stat"].as_str() {
            Some("Ok") => TokenCheck::Valid(
                v["uid"]
                    .as_str()
                    .or(v["actid"].as_str())
                    .unwrap_or("?")
                    .to_string(),
            ),
            Some("Not_Ok")
                if emsg.contains("Session Expired")
                    || emsg.contains("Invalid Session")
                    || emsg.contains("Invalid Access Token") =>
            {
                TokenCheck::Invalid(format!(
                    "{} rejected the session ({}): log in again and write the new token",
                    self.name,
                    emsg.trim()
                ))
            }
            _ => TokenCheck::Unknown(format!("Limits answered HTTP {status} {}", emsg.trim())),
        }
    }
}

/// Parse one Noren symbol master (`Exchange,Token,LotSize,Symbol,TradingSymbol,...`). Cash
/// symbols carry a series suffix (`INFY-EQ`) and resolve both as `NSE:INFY` and
/// `NSE:INFY-EQ`.
pub fn parse_symbols(text: &str) -> Result<Vec<Instrument>, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("symbol master is empty")?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let idx = |name: &str| {
        cols.iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("symbol master: no {name:?} column"))
    };
    let (ex, tok, ts) = (idx("Exchange")?, idx("Token")?, idx("TradingSymbol")?);
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| {
            f.get(i)
                .copied()
                .ok_or_else(|| format!("symbol master line {}: too few columns", n + 2))
        };
        let exchange = get(ex)?.to_ascii_uppercase();
        let Some(seg) = codec::seg_of(&exchange) else {
            continue;
        };
        let token: u32 = get(tok)?
            .parse()
            .map_err(|_| format!("symbol master line {}: bad token", n + 2))?;
        let symbol = get(ts)?.to_ascii_uppercase();
        let key = FeedKey { seg, token };
        if matches!(exchange.as_str(), "NSE" | "BSE")
            && let Some(base) = symbol.strip_suffix("-EQ")
        {
            out.push(Instrument {
                exchange: exchange.clone(),
                symbol: base.to_string(),
                key,
            });
        }
        out.push(Instrument {
            exchange,
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

    fn creds() -> Credentials {
        Credentials {
            access_token: Secret::new("susertoken123"),
            client_code: "FA12345".into(),
            ..Default::default()
        }
    }

    #[test]
    fn login_per_flavour_and_ack_mapping() {
        let WsOut::Text(t) = &Noren::shoonya().login(&creds())[0] else {
            panic!()
        };
        assert!(t.contains(r#""t":"c""#) && t.contains("susertoken"), "{t}");
        let WsOut::Text(t) = &Noren::flattrade().login(&creds())[0] else {
            panic!()
        };
        assert!(t.contains(r#""t":"a""#) && t.contains("accesstoken"), "{t}");
        let mut d = Noren::shoonya().decoder();
        let mut out = Vec::new();
        assert_eq!(
            d.text(r#"{"t":"ck","s":"OK","uid":"FA12345"}"#, &mut out),
            Ok(Inbound::LoginOk)
        );
        assert!(matches!(
            d.text(r#"{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}"#, &mut out),
            Ok(Inbound::AuthRejected(m)) if m.contains("Invalid Session Key")
        ));
        assert!(matches!(
            d.text(r#"{"t":"ck","s":"Ok"}"#, &mut out),
            Ok(Inbound::ServerError(_))
        ));
    }

    #[test]
    fn feeds_follow_modes() {
        let k = vec![FeedKey { seg: 1, token: 22 }];
        let t = |v: Vec<WsOut>| -> Vec<String> {
            v.into_iter()
                .map(|m| match m {
                    WsOut::Text(t) => t,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let s =
            t(Noren::shoonya().subscribe(&[(Mode::Quote, k.clone()), (Mode::Depth, k.clone())]));
        assert!(
            s[0].contains(r#""t":"t""#) && s[1].contains(r#""t":"d""#),
            "{s:?}"
        );
        let m = t(Noren::shoonya().set_mode(&[(Mode::Depth, k.clone())]));
        assert!(
            m[0].contains(r#""t":"d""#) && m[1].contains(r#""t":"u""#),
            "{m:?}"
        );
        assert_eq!(t(Noren::shoonya().unsubscribe(&k)).len(), 2);
        assert!(matches!(
            Noren::shoonya().keepalive(),
            Some((_, WsOut::Ping(_)))
        ));
    }

    #[test]
    fn limits_token_check_raw_body_and_verdicts() {
        let ep = Endpoints::new("ws://x/NorenWSTP/", "http://127.0.0.1:9/NorenWClientTP/");
        let r = Noren::shoonya().token_check_request(&ep, &creds()).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9/NorenWClientTP/Limits");
        assert_eq!(
            r.body.as_deref(),
            Some(r#"jData={"uid":"FA12345","actid":"FA12345"}&jKey=susertoken123"#)
        );
        let n = Noren::shoonya();
        assert_eq!(
            n.token_check_response(200, r#"{"stat":"Ok","uid":"FA12345"}"#),
            TokenCheck::Valid("FA12345".into())
        );
        assert!(matches!(
            n.token_check_response(
                200,
                r#"{"stat":"Not_Ok","emsg":"Session Expired :  Invalid Session Key"}"#
            ),
            TokenCheck::Invalid(_)
        ));
        assert!(matches!(
            n.token_check_response(500, ""),
            TokenCheck::Unknown(_)
        ));
    }

    #[test]
    fn symbol_master_with_series_aliases() {
        let t = "Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,\nNSE,1594,1,INFY,INFY-EQ,EQ,0.05,\nNFO,35001,75,NIFTY,NIFTY25DECFUT,FUTIDX,0.05,\nXYZ,1,1,A,A,EQ,0.05,\n";
        let v = parse_symbols(t).unwrap();
        let names: Vec<String> = v.iter().map(Instrument::display_name).collect();
        assert_eq!(names, ["NSE:INFY", "NSE:INFY-EQ", "NFO:NIFTY25DECFUT"]);
        assert_eq!(
            v[2].key,
            FeedKey {
                seg: 2,
                token: 35001
            }
        );
        assert!(parse_symbols("").is_err());
        assert!(parse_symbols("Exchange,Token,TradingSymbol\nNSE,x,A\n").is_err());
    }
}
