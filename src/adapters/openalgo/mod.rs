//! OpenAlgo upstream: consume an OpenAlgo-compatible proxy (OpenAlgo itself, or another
//! tickmux's `serve`, e.g. on a VPS) as the feed. The API key is sent as the first message;
//! nothing is subscribed before the `auth` success. Instruments are named by symbol on this
//! wire, so any `EXCHANGE:SYMBOL` is accepted and the upstream judges it (a refusal shows in
//! health and the event log). Reconnect, resubscribe and watchdogs are the engine's.

pub mod codec;

use super::{
    Adapter, CodecError, Credentials, Decoder, Endpoints, Inbound, Limits, RestRequest, TokenCheck,
    WsOut,
};
use crate::model::{FeedKey, Instrument, Mode, Tick};
use codec::SymbolTable;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// OpenAlgo's default endpoint.
pub const WS_URL: &str = "ws://127.0.0.1:8765";

/// OpenAlgo's pool holds at most 3000 symbols (1000 × 3 connections).
pub const LIMITS: Limits = Limits {
    max_instruments: 3000,
    batch: 200,
};

/// WebSocket pings: OpenAlgo sends no application heartbeat (tickmux's proxy does), so the
/// pongs are what proves the transport when the market is quiet.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The OpenAlgo upstream adapter. Clones share one symbol table.
#[derive(Debug, Default, Clone)]
pub struct OpenAlgo {
    table: Arc<Mutex<SymbolTable>>,
}

impl OpenAlgo {
    fn names(&self, keys: &[FeedKey]) -> Vec<(String, String)> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter().filter_map(|k| t.name(k).cloned()).collect()
    }

    fn batched(&self, keys: &[FeedKey], f: impl Fn(&[(String, String)]) -> String) -> Vec<WsOut> {
        self.names(keys)
            .chunks(LIMITS.batch)
            .map(|c| WsOut::Text(f(c)))
            .collect()
    }
}

struct OpenAlgoDecoder {
    table: Arc<Mutex<SymbolTable>>,
}

impl Decoder for OpenAlgoDecoder {
    fn binary(&mut self, data: &[u8], out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        // OpenAlgo answers JSON in binary frames too.
        let text = std::str::from_utf8(data)
            .map_err(|_| CodecError::BadText("binary frame is not UTF-8 JSON".into()))?;
        self.text(text, out)
    }

    fn text(&mut self, data: &str, out: &mut Vec<Tick>) -> Result<Inbound, CodecError> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        codec::decode(&t, data, out)
    }
}

const MODES: [Mode; 3] = [Mode::Ltp, Mode::Quote, Mode::Depth];

impl Adapter for OpenAlgo {
    fn name(&self) -> &'static str {
        "openalgo"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn transport_timeout(&self) -> Duration {
        Duration::from_secs(12)
    }

    fn ws_url(&self, ep: &Endpoints, _creds: &Credentials) -> String {
        ep.ws_url.clone()
    }

    fn login(&self, c: &Credentials) -> Vec<WsOut> {
        vec![WsOut::Text(codec::encode_auth(c.api_key.expose()))]
    }

    fn login_ack(&self) -> bool {
        true
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(OpenAlgoDecoder {
            table: self.table.clone(),
        })
    }

    fn subscribe(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        groups
            .iter()
            .flat_map(|(m, keys)| self.batched(keys, |n| codec::encode_subscribe(*m, n)))
            .collect()
    }

    fn set_mode(&self, groups: &[(Mode, Vec<FeedKey>)]) -> Vec<WsOut> {
        // The proxy keeps every mode a client subscribed: add the new one, drop the others.
        let mut out = self.subscribe(groups);
        for (m, keys) in groups {
            for old in MODES.into_iter().filter(|o| o != m) {
                out.extend(self.batched(keys, |n| codec::encode_unsubscribe(old, n)));
            }
        }
        out
    }

    fn unsubscribe(&self, keys: &[FeedKey]) -> Vec<WsOut> {
        MODES
            .into_iter()
            .flat_map(|m| self.batched(keys, move |n| codec::encode_unsubscribe(m, n)))
            .collect()
    }

    fn keepalive(&self) -> Option<(Duration, WsOut)> {
        Some((PING_EVERY, WsOut::Ping(Vec::new())))
    }

    fn instrument_requests(&self, _ep: &Endpoints, _creds: &Credentials) -> Vec<RestRequest> {
        Vec::new()
    }

    fn raw_key(&self, exchange: &str, token: u32) -> Option<FeedKey> {
        self.unlisted(exchange, &token.to_string())
    }

    fn parse_instruments(&self, _text: &str) -> Result<Vec<Instrument>, String> {
        Ok(Vec::new())
    }

    fn unlisted(&self, exchange: &str, symbol: &str) -> Option<FeedKey> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        Some(t.key(exchange, symbol))
    }

    fn token_check_request(&self, _ep: &Endpoints, _c: &Credentials) -> Option<RestRequest> {
        // The key is checked by the `authenticate` message on the WebSocket.
        None
    }

    fn token_check_response(&self, status: u16, _body: &str) -> TokenCheck {
        TokenCheck::Unknown(format!("no token check for OpenAlgo (HTTP {status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_shared_table_and_messages_name_symbols() {
        let a = OpenAlgo::default();
        let k = a.unlisted("NSE", "INFY").unwrap();
        assert_eq!(a.unlisted("NSE", "INFY"), Some(k));
        let WsOut::Text(s) = &a.subscribe(&[(Mode::Ltp, vec![k])])[0] else {
            panic!()
        };
        assert!(
            s.contains(r#""symbol":"INFY""#) && s.contains(r#""mode":1"#),
            "{s}"
        );
        assert_eq!(a.set_mode(&[(Mode::Depth, vec![k])]).len(), 3);
        assert_eq!(a.unsubscribe(&[k]).len(), 3);
        let mut d = a.clone().decoder();
        let mut out = Vec::new();
        let m = r#"{"type":"market_data","symbol":"INFY","exchange":"NSE","mode":1,"data":{"ltp":10.5}}"#;
        d.text(m, &mut out).unwrap();
        assert_eq!(out[0].key, k);
        assert!(matches!(
            &a.login(&Credentials::default())[0],
            WsOut::Text(t) if t.contains("authenticate")
        ));
    }
}
