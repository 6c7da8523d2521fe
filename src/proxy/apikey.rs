//! The proxy's API key: generated on first use, stored in the data dir with 0600 permissions,
//! printed by `tickmux key`, compared in constant time.

use crate::secret::Secret;
use anyhow::Context as _;
use rand::RngCore as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File name of the key in the data dir.
pub const FILE: &str = "proxy_api_key";

/// Default location: `<data dir>/proxy_api_key`.
pub fn default_path() -> Option<PathBuf> {
    crate::config::data_dir().map(|d| d.join(FILE))
}

/// A new random key: 32 bytes as 64 hex characters.
pub fn generate() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Read the key at `path`, creating it (and its directory) when missing. A file readable by
/// others is tightened to 0600 and reported in the log.
pub fn load_or_create(path: &Path) -> anyhow::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let key = s.trim().to_string();
            if key.len() < 16 {
                anyhow::bail!(
                    "{}: the API key is shorter than 16 characters; delete the file (or run `tickmux key --rotate`) to generate a new one",
                    path.display()
                );
            }
            tighten(path)?;
            Ok(Secret::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new(path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replace the key with a new one (old clients must re-authenticate with it).
pub fn rotate(path: &Path) -> anyhow::Result<Secret> {
    write_new(path)
}

fn write_new(path: &Path) -> anyhow::Result<Secret> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = generate();
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(key.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    tighten(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    tracing::info!(path = %path.display(), "proxy API key generated");
    Ok(Secret::new(key))
}

#[cfg(unix)]
fn tighten(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting 0600 on {}", path.display()))?;
        tracing::warn!(path = %path.display(), "API key file was readable by others; set to 0600");
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Constant-time equality: the time taken depends on the lengths only, never on where the
/// first difference is.
pub fn matches(expected: &Secret, given: &str) -> bool {
    let (a, b) = (expected.expose().as_bytes(), given.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join(FILE);
        let k1 = load_or_create(&p).unwrap();
        assert_eq!(k1.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let k2 = load_or_create(&p).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "tightened");
        }
        let k3 = rotate(&p).unwrap();
        assert_ne!(k1.expose(), k3.expose());
        std::fs::write(&p, "short").unwrap();
        assert!(load_or_create(&p).is_err());
    }

    #[test]
    fn constant_time_compare() {
        let k = Secret::new("abcdef0123456789");
        assert!(matches(&k, "abcdef0123456789"));
        assert!(!matches(&k, "abcdef012345678"));
        assert!(!matches(&k, "abcdef01234567890"));
        assert!(!matches(&k, "Abcdef0123456789"));
        assert!(!matches(&k, ""));
    }
}
