//! Secrets (access tokens, API keys) that never print: Debug and Display are redacted, and
//! [`redact`] scrubs known secret values and token-looking query parameters from any text.

use std::fmt;
use std::sync::{Arc, RwLock};

/// A secret string. Debug/Display print `***`; use [`Secret::expose`] only where the value
/// must go on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret and register it with the global redactor.
    pub fn new(s: impl Into<String>) -> Secret {
        let s = s.into();
        register(&s);
        Secret(s)
    }
    /// The raw value, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

static KNOWN: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

/// Remember a secret value so [`redact`] removes it from any text (log lines, errors).
pub fn register(s: &str) {
    // Very short values would redact ordinary words; real tokens are long.
    if s.len() < 6 {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| &**k == s) {
        known.push(Arc::from(s));
    }
}

/// Query parameters and header-ish keys whose values are always redacted.
const SECRET_KEYS: &[&str] = &[
    "access_token=",
    "api_key=",
    "apikey=",
    "token=",
    "jKey=",
    "susertoken=",
    "accesstoken=",
];

/// Scrub registered secrets and `key=value` secret parameters from text.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    {
        let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
        for k in known.iter() {
            if out.contains(&**k) {
                out = out.replace(&**k, "***");
            }
        }
    }
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(pos) = out[from..].find(key) {
            let start = from + pos + key.len();
            let end = out[start..]
                .find(['&', ' ', '"', '\'', ','])
                .map(|e| start + e)
                .unwrap_or(out.len());
            if &out[start..end] != "***" {
                out.replace_range(start..end, "***");
            }
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("abcdef123456");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "abcdef123456");
    }

    #[test]
    fn redact_scrubs_registered_values_and_query_params() {
        let _s = Secret::new("supersecrettoken42");
        let t = redact("GET /?api_key=kk1&access_token=zzz9 failed: supersecrettoken42 bad");
        assert!(!t.contains("supersecrettoken42"), "{t}");
        assert!(!t.contains("zzz9"), "{t}");
        assert!(!t.contains("kk1"), "{t}");
        assert!(t.contains("access_token=***"), "{t}");
    }
}
