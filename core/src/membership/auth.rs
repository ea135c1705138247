//! The membership keys: heartbeats are signed with HMAC-SHA256 under the primary key;
//! the primary and an optional secondary are accepted, which is how a key is rotated
//! without a failover (docs/membership.md, "Security").

use std::fmt;

use ring::{digest, hmac};

use super::wire::{KEY_ID_LEN, MAC_LEN};

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Why a key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is shorter than [`MIN_KEY_LEN`].
    #[error("membership key `{which}` is {len} bytes long; at least 16 are required")]
    TooShort {
        /// `primary` or `secondary`.
        which: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Why a heartbeat failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Its key id is neither the primary's nor the secondary's.
    #[error("unknown membership key id")]
    UnknownKey,
    /// The MAC does not match.
    #[error("bad membership MAC")]
    BadMac,
}

/// The id of a key: the first 4 bytes of its SHA-256.
pub fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let d = digest::digest(&digest::SHA256, key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&d.as_ref()[..KEY_ID_LEN]);
    id
}

struct Key {
    id: [u8; KEY_ID_LEN],
    hmac: hmac::Key,
}

impl Key {
    fn new(which: &'static str, bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                which,
                len: bytes.len(),
            });
        }
        Ok(Key {
            id: key_id(bytes),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }
}

/// The primary key (signs and verifies) and an optional secondary (verifies only).
pub struct Keyring {
    primary: Key,
    secondary: Option<Key>,
}

/// Shows the key ids only, never the keys.
impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary_id", &self.primary.id)
            .field("secondary_id", &self.secondary.as_ref().map(|k| k.id))
            .finish()
    }
}

impl Keyring {
    /// Builds a keyring; each key must be at least [`MIN_KEY_LEN`] bytes long.
    pub fn new(primary: &[u8], secondary: Option<&[u8]>) -> Result<Self, KeyError> {
        Ok(Keyring {
            primary: Key::new("primary", primary)?,
            secondary: secondary.map(|s| Key::new("secondary", s)).transpose()?,
        })
    }

    /// The id heartbeats are signed under.
    pub fn primary_id(&self) -> [u8; KEY_ID_LEN] {
        self.primary.id
    }

    /// HMAC-SHA256 of `data` under the primary key.
    pub fn sign(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let tag = hmac::sign(&self.primary.hmac, data);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks `mac` over `data` under the key named by `id`, in constant time.
    pub fn verify(&self, id: [u8; KEY_ID_LEN], data: &[u8], mac: &[u8]) -> Result<(), AuthError> {
        let key = if id == self.primary.id {
            &self.primary
        } else {
            match &self.secondary {
                Some(k) if k.id == id => k,
                _ => return Err(AuthError::UnknownKey),
            }
        };
        hmac::verify(&key.hmac, data, mac).map_err(|_| AuthError::BadMac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_rejected_naming_the_key() {
        let e = Keyring::new(&[1; 15], None).unwrap_err();
        assert_eq!(
            e,
            KeyError::TooShort {
                which: "primary",
                len: 15
            }
        );
        let e = Keyring::new(&[1; 16], Some(&[2; 3])).unwrap_err();
        assert!(e.to_string().contains("secondary"), "{e}");
    }

    #[test]
    fn signs_with_primary_and_accepts_both() {
        let old = Keyring::new(b"old-key-0123456789", None).unwrap();
        let rotating = Keyring::new(b"new-key-0123456789", Some(b"old-key-0123456789")).unwrap();
        let mac = old.sign(b"hello");
        assert_eq!(rotating.verify(old.primary_id(), b"hello", &mac), Ok(()));
        assert_eq!(
            rotating.verify(old.primary_id(), b"hellO", &mac),
            Err(AuthError::BadMac)
        );
        let mac = rotating.sign(b"hello");
        assert_eq!(
            old.verify(rotating.primary_id(), b"hello", &mac),
            Err(AuthError::UnknownKey)
        );
        assert!(!format!("{rotating:?}").contains("key-0123"));
    }

    #[test]
    fn key_id_is_the_sha256_prefix() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(key_id(b"abc"), [0xba, 0x78, 0x16, 0xbf]);
    }
}
