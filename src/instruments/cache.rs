//! The instrument master cached in the cache dir: brokers publish it once a day (early
//! morning IST), it is large (Angel's JSON is tens of MB), and a start without network must
//! still resolve symbols. A cached copy is fresh until the next 08:00 IST after it was
//! written; a stale one is still used, with a warning, when the broker cannot be reached.

use super::InstrumentMaster;
use crate::adapters::{Adapter, Credentials, Endpoints};
use crate::model::Instrument;
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Asia::Kolkata;
use serde::{Deserialize, Serialize};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// When the day's master is taken to be published (IST).
const REFRESH_AT: (u32, u32) = (8, 0);

#[derive(Serialize, Deserialize)]
struct File {
    broker: String,
    fetched_at_unix: i64,
    instruments: Vec<Instrument>,
}

/// Where a broker's cached master lives: one file per broker and master URL.
pub fn path(dir: &Path, adapter: &dyn Adapter, ep: &Endpoints, creds: &Credentials) -> PathBuf {
    let mut h = DefaultHasher::new();
    for r in adapter.instrument_requests(ep, creds) {
        r.url.hash(&mut h);
    }
    dir.join("instruments")
        .join(format!("{}-{:016x}.json", adapter.name(), h.finish()))
}

/// The refresh time after `fetched`: the first 08:00 IST strictly after it.
pub fn expires(fetched: DateTime<Utc>) -> DateTime<Utc> {
    let ist = fetched.with_timezone(&Kolkata);
    let at = NaiveTime::from_hms_opt(REFRESH_AT.0, REFRESH_AT.1, 0).unwrap_or_default();
    let mut day = ist.date_naive();
    if ist.time() >= at {
        day += ChronoDuration::days(1);
    }
    Kolkata
        .from_local_datetime(&day.and_time(at))
        .single()
        .map_or(fetched + ChronoDuration::days(1), |t| t.with_timezone(&Utc))
}

fn read(p: &Path) -> Option<File> {
    let text = std::fs::read_to_string(p).ok()?;
    match serde_json::from_str(&text) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path = %p.display(), "instrument cache unreadable ({e}); ignored");
            None
        }
    }
}

fn write(p: &Path, broker: &str, m: &InstrumentMaster, now: DateTime<Utc>) -> std::io::Result<()> {
    let f = File {
        broker: broker.to_string(),
        fetched_at_unix: now.timestamp(),
        instruments: m.entries().cloned().collect(),
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&f)?)?;
    std::fs::rename(&tmp, p)
}

/// The master from the cache when fresh, else from the broker (and cached); when the broker
/// cannot be reached, a stale cache rather than nothing. `dir = None` never caches.
pub async fn load(
    adapter: Arc<dyn Adapter>,
    ep: &Endpoints,
    creds: &Credentials,
    dir: Option<&Path>,
    now: DateTime<Utc>,
) -> anyhow::Result<InstrumentMaster> {
    let Some(dir) = dir else {
        return Ok(InstrumentMaster::fetch(&*adapter, ep, creds)
            .await?
            .with_adapter(adapter));
    };
    if adapter.instrument_requests(ep, creds).is_empty() {
        // Nothing to fetch (OpenAlgo names instruments by symbol).
        return Ok(InstrumentMaster::default().with_adapter(adapter));
    }
    let p = path(dir, &*adapter, ep, creds);
    // Masters run to tens of MB: read and parse them off the async runtime.
    let cached = {
        let p = p.clone();
        tokio::task::spawn_blocking(move || read(&p))
            .await
            .unwrap_or(None)
    };
    if let Some(f) = &cached {
        let fetched = Utc
            .timestamp_opt(f.fetched_at_unix, 0)
            .single()
            .unwrap_or(now);
        if now < expires(fetched) && !f.instruments.is_empty() {
            tracing::info!(path = %p.display(), instruments = f.instruments.len(), "instrument master from the cache");
            return Ok(InstrumentMaster::new(f.instruments.clone()).with_adapter(adapter));
        }
    }
    match InstrumentMaster::fetch(&*adapter, ep, creds).await {
        Ok(m) => {
            let (p2, m2, name) = (p.clone(), m.clone(), adapter.name());
            let written = tokio::task::spawn_blocking(move || write(&p2, name, &m2, now)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(path = %p.display(), "could not cache the instrument master: {e}")
                }
                Err(e) => tracing::warn!("caching the instrument master failed: {e}"),
            }
            Ok(m.with_adapter(adapter))
        }
        Err(e) => match cached {
            Some(f) if !f.instruments.is_empty() => {
                tracing::warn!(
                    "{e:#}; using the cached master from {} (stale: new listings are missing)",
                    Utc.timestamp_opt(f.fetched_at_unix, 0)
                        .single()
                        .map_or_else(|| "?".into(), |t| t.with_timezone(&Kolkata).to_rfc3339())
                );
                Ok(InstrumentMaster::new(f.instruments).with_adapter(adapter))
            }
            _ => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Kolkata
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn fresh_until_the_next_0800_ist() {
        assert_eq!(expires(ist(2026, 12, 1, 7, 59)), ist(2026, 12, 1, 8, 0));
        assert_eq!(expires(ist(2026, 12, 1, 8, 0)), ist(2026, 12, 2, 8, 0));
        assert_eq!(expires(ist(2026, 12, 1, 23, 30)), ist(2026, 12, 2, 8, 0));
    }
}
