//! Secrets at rest: text the store keeps encrypted (a run's option values until it ends,
//! pipeline definitions), with XChaCha20-Poly1305 under a 32-byte key from
//! `CDE_SECRET_KEY` or the key file `<data dir>/secret.key`, created 0600 on first use.
//!
//! A sealed value is `enc:v1:<base64 of nonce and ciphertext>`; text without that prefix
//! was written by an older version and is read as it is.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

pub const SEALED_PREFIX: &str = "enc:v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Seals and opens text under the installation's key.
#[derive(Clone)]
pub struct Secrets {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(********)")
    }
}

impl Secrets {
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// The key given (`CDE_SECRET_KEY`: 64 hex digits or base64 of 32 bytes), or else the
    /// one in `key_file`, created with random bytes when there is none.
    pub fn load(given: Option<&str>, key_file: &Path) -> Result<Self> {
        let key = match given {
            Some(text) => parse_key(text)?,
            None => key_file_key(key_file)?,
        };
        Ok(Self::from_key(&key))
    }

    /// `enc:v1:` and the base64 of a random nonce followed by the ciphertext.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("encrypting in memory does not fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", BASE64.encode(bytes))
    }

    /// The plain text of a sealed value; unsealed text is returned as it is. `what` names
    /// the value in the error.
    pub fn open(&self, stored: &str, what: &str) -> Result<String> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let undecipherable = |why: &str| {
            Error::Config(format!(
                "cannot decrypt {what}: {why} (is CDE_SECRET_KEY or secret.key the key it was written with?)"
            ))
        };
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| undecipherable("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(undecipherable("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| undecipherable("authentication failed"))?;
        String::from_utf8(plain).map_err(|_| undecipherable("not UTF-8"))
    }
}

pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

fn parse_key(text: &str) -> Result<[u8; KEY_LEN]> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..KEY_LEN)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
            .collect()
    } else {
        BASE64
            .decode(text)
            .map_err(|_| Error::Config("CDE_SECRET_KEY: not 64 hex digits and not base64".into()))?
    };
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        Error::Config(format!(
            "CDE_SECRET_KEY: a key is {KEY_LEN} bytes, this one is {}",
            bytes.len()
        ))
    })
}

/// Reads the key file, or creates it: the key is written to a 0600 temporary file that is
/// then linked into place, so a concurrent reader sees no file or a whole key; whoever
/// links second reads the winner's key.
fn key_file_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    let read = |path: &Path| -> Result<[u8; KEY_LEN]> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Config(format!("reading the secret key {}: {e}", path.display()))
        })?;
        bytes.try_into().map_err(|bytes: Vec<u8>| {
            Error::Config(format!(
                "the secret key {} holds {} bytes, not {KEY_LEN}",
                path.display(),
                bytes.len()
            ))
        })
    };
    if path.exists() {
        return read(path);
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let creating = |e: std::io::Error| {
        Error::Config(format!("creating the secret key {}: {e}", path.display()))
    };
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    // tempfile creates its files 0600.
    let mut partial = tempfile::NamedTempFile::new_in(dir).map_err(creating)?;
    crate::private::chmod(partial.path(), crate::private::FILE_MODE)?;
    partial.write_all(&key).map_err(creating)?;
    partial.as_file().sync_all().map_err(creating)?;
    match partial.persist_noclobber(path) {
        Ok(_) => Ok(key.into()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(creating(e.error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_text_opens_and_plain_text_passes() {
        let secrets = Secrets::from_key(&[7; KEY_LEN]);
        let sealed = secrets.seal("{\"TOKEN\":\"s3cret\"}");
        assert!(is_sealed(&sealed), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            secrets.seal("{\"TOKEN\":\"s3cret\"}"),
            "fresh nonce"
        );
        assert_eq!(
            secrets.open(&sealed, "x").unwrap(),
            "{\"TOKEN\":\"s3cret\"}"
        );
        assert_eq!(secrets.open("{}", "x").unwrap(), "{}");
        let other = Secrets::from_key(&[8; KEY_LEN]);
        let err = other.open(&sealed, "the config of run r1").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot decrypt the config of run r1: authentication failed"),
            "{err}"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(secrets.open(&tampered, "x").is_err());
    }

    #[test]
    fn keys_are_hex_or_base64_of_32_bytes() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(parse_key(&BASE64.encode([3u8; 32])).unwrap(), [3; 32]);
        let err = parse_key(&BASE64.encode([3u8; 16])).unwrap_err();
        assert!(err.to_string().contains("this one is 16"), "{err}");
        assert!(parse_key("not a key!").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = key_file_key(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(key_file_key(&path).unwrap(), first);
        let sealed = Secrets::load(None, &path).unwrap().seal("v");
        assert_eq!(
            Secrets::load(None, &path)
                .unwrap()
                .open(&sealed, "v")
                .unwrap(),
            "v"
        );
        // Concurrent first uses agree on one key.
        let path = dir.path().join("raced.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| key_file_key(&path))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(std::fs::read(&path).unwrap(), keys[0]);
    }
}
