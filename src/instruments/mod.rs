//! Instrument master: resolves what users type (`NSE:INFY`, `NSE:NIFTY 50`, or a raw broker
//! token `NSE:408065`) to instruments, from the broker's master fetched over REST.

pub mod cache;

use crate::adapters::{Adapter, Credentials, Endpoints};
use crate::model::{FeedKey, Instrument, parse_symbol};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Instruments by `EXCHANGE:SYMBOL` and by feed key.
#[derive(Default, Clone)]
pub struct InstrumentMaster {
    by_name: HashMap<(String, String), Arc<Instrument>>,
    by_key: HashMap<FeedKey, Arc<Instrument>>,
    /// Every entry in master order (aliases included), for the cache.
    all: Vec<Arc<Instrument>>,
    /// The broker, for raw tokens and symbols outside the master (see [`Adapter::raw_key`]
    /// and [`Adapter::unlisted`]); without it a raw token is taken as Kite's.
    adapter: Option<Arc<dyn Adapter>>,
}

impl std::fmt::Debug for InstrumentMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentMaster")
            .field("instruments", &self.by_key.len())
            .field("adapter", &self.adapter.as_ref().map(|a| a.name()))
            .finish()
    }
}

impl InstrumentMaster {
    /// Build from parsed instruments (first occurrence of a name wins).
    pub fn new(list: Vec<Instrument>) -> InstrumentMaster {
        let mut m = InstrumentMaster::default();
        for i in list {
            let i = Arc::new(i);
            m.all.push(i.clone());
            m.by_name
                .entry((i.exchange.clone(), i.symbol.clone()))
                .or_insert_with(|| i.clone());
            m.by_key.entry(i.key).or_insert(i);
        }
        m
    }

    /// Resolve raw tokens and unlisted symbols the way `adapter` does.
    pub fn with_adapter(mut self, adapter: Arc<dyn Adapter>) -> InstrumentMaster {
        self.adapter = Some(adapter);
        self
    }

    /// Fetch and parse the broker's master over REST (every file it names).
    pub async fn fetch(
        adapter: &dyn Adapter,
        endpoints: &Endpoints,
        creds: &Credentials,
    ) -> anyhow::Result<InstrumentMaster> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut list = Vec::new();
        for req in adapter.instrument_requests(endpoints, creds) {
            let url = crate::secret::redact(&req.url);
            let (status, text) = req.send(&client).await.map_err(|e| {
                anyhow::anyhow!(
                    "could not fetch the instrument master {url}: {}",
                    crate::secret::redact(&e)
                )
            })?;
            if status == 404 && !list.is_empty() {
                // Not every broker publishes every exchange's file.
                tracing::warn!("instrument master {url}: HTTP 404; skipped");
                continue;
            }
            if !(200..300).contains(&status) {
                anyhow::bail!("instrument master {url}: HTTP {status}");
            }
            list.extend(
                adapter
                    .parse_instruments(&text)
                    .map_err(|e| anyhow::anyhow!("instrument master {url}: {e}"))?,
            );
        }
        Ok(InstrumentMaster::new(list))
    }

    /// Resolve one `EXCHANGE:SYMBOL` (or `EXCHANGE:TOKEN`).
    pub fn resolve(&self, s: &str) -> Result<Arc<Instrument>, String> {
        let (ex, sym) = parse_symbol(s)?;
        if let Some(i) = self.by_name.get(&(ex.clone(), sym.clone())) {
            return Ok(i.clone());
        }
        if let Some(a) = &self.adapter
            && let Some(key) = a.unlisted(&ex, &sym)
        {
            // A broker that names instruments by symbol on the wire (OpenAlgo).
            return Ok(Arc::new(Instrument {
                exchange: ex,
                symbol: sym,
                key,
            }));
        }
        if let Ok(tok) = sym.parse::<u32>() {
            if let Some(i) = self
                .by_key
                .values()
                .find(|i| i.key.token == tok && i.exchange == ex)
            {
                return Ok(i.clone());
            }
            // A raw token the master does not list: trust the user, keyed the broker's way.
            let key = match &self.adapter {
                Some(a) => a
                    .raw_key(&ex, tok)
                    .ok_or_else(|| format!("{ex}:{sym}: {} has no exchange {ex}", a.name()))?,
                None => FeedKey::kite(tok),
            };
            return Ok(Arc::new(Instrument {
                exchange: ex,
                symbol: sym,
                key,
            }));
        }
        Err(format!(
            "{ex}:{sym}: unknown instrument (not in the instrument master)"
        ))
    }

    /// Resolve many; each item succeeds or fails on its own.
    pub fn resolve_all<'a>(
        &self,
        items: impl IntoIterator<Item = &'a str>,
    ) -> (Vec<Arc<Instrument>>, Vec<String>) {
        let mut ok = Vec::new();
        let mut errs = Vec::new();
        for s in items {
            match self.resolve(s) {
                Ok(i) => ok.push(i),
                Err(e) => errs.push(e),
            }
        }
        (ok, errs)
    }

    /// Look up by feed key.
    pub fn by_key(&self, k: &FeedKey) -> Option<&Arc<Instrument>> {
        self.by_key.get(k)
    }

    /// Every entry, in master order (aliases included).
    pub fn entries(&self) -> impl Iterator<Item = &Instrument> {
        self.all.iter().map(|i| &**i)
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> InstrumentMaster {
        InstrumentMaster::new(vec![
            Instrument {
                exchange: "NSE".into(),
                symbol: "INFY".into(),
                key: FeedKey::kite(408065),
            },
            Instrument {
                exchange: "NSE".into(),
                symbol: "NIFTY 50".into(),
                key: FeedKey::kite(256265),
            },
        ])
    }

    #[test]
    fn resolves_names_tokens_and_reports_unknowns() {
        let m = master();
        assert_eq!(m.resolve("nse:infy").unwrap().key.token, 408065);
        assert_eq!(m.resolve("NSE:NIFTY 50").unwrap().key.token, 256265);
        assert_eq!(m.resolve("NSE:408065").unwrap().symbol, "INFY");
        let (ok, errs) = m.resolve_all(["NSE:INFY", "NSE:NOPE", "bad"]);
        assert_eq!(ok.len(), 1);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("NSE:NOPE"));
    }
}
