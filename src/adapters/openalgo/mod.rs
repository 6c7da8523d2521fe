//! OpenAlgo upstream: consume an OpenAlgo-compatible proxy (OpenAlgo itself, or another
//! tickmux's `serve`) as the feed.
