//! Configuration file, command-line overrides and secrets.

/// Serde helper: durations as (fractional) seconds.
pub mod secs_f64 {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserialize seconds (integer or float) into a Duration; negative or NaN is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v)
            .map_err(|_| serde::de::Error::custom(format!("{v} is not a valid number of seconds")))
    }
}
