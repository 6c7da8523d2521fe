//! The instrument master cache: fetched once and reused while fresh (until the next 08:00
//! IST), refetched when stale, and a stale copy used when the broker is unreachable; without
//! a cache and without the broker, a clear error.

mod common;

use chrono::{Duration, Utc};
use common::{sim_config, sim_creds};
use std::sync::Arc;
use tickmux::adapters::kite::Kite;
use tickmux::adapters::{Adapter, Endpoints};
use tickmux::instruments::cache;
use tickmux::sim::Sim;

#[tokio::test]
async fn cached_while_fresh_refetched_when_stale_and_stale_beats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sim_config();
    let sim = Sim::start(cfg.clone()).await.unwrap();
    let ep = Endpoints::new(sim.ws_url(), sim.rest_url());
    let creds = sim_creds(&cfg);
    let a: Arc<dyn Adapter> = Arc::new(Kite);
    let now = Utc::now();
    let m = cache::load(a.clone(), &ep, &creds, Some(dir.path()), now)
        .await
        .unwrap();
    let n = m.len();
    assert!(n > 100);
    let file = cache::path(dir.path(), &*a, &ep, &creds);
    assert!(file.exists(), "{}", file.display());
    let fetched = sim.control().stats().rest_requests;

    // Fresh: no request at all.
    let m = cache::load(
        a.clone(),
        &ep,
        &creds,
        Some(dir.path()),
        now + Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(m.len(), n);
    assert!(m.resolve("NSE:INFY").is_ok());
    let after = sim.control().stats().rest_requests;
    assert!(
        after <= fetched + 1,
        "the cache answered: {fetched} → {after}"
    );

    // Stale (a day later): fetched again.
    cache::load(
        a.clone(),
        &ep,
        &creds,
        Some(dir.path()),
        now + Duration::days(2),
    )
    .await
    .unwrap();
    assert!(sim.control().stats().rest_requests > after);

    // The broker is gone: a stale cache still resolves symbols...
    sim.shutdown().await;
    let m = cache::load(
        a.clone(),
        &ep,
        &creds,
        Some(dir.path()),
        now + Duration::days(9),
    )
    .await
    .unwrap();
    assert!(m.resolve("NSE:RELIANCE").is_ok());
    // ...and no cache is a clear error naming the master.
    let empty = tempfile::tempdir().unwrap();
    let e = cache::load(a, &ep, &creds, Some(empty.path()), now)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("instrument master"), "{e:#}");
}
