//! List cursors as callers see them: the store's own position, sealed with AES-256-GCM under a
//! deployment key and bound to the tenant. A caller learns nothing of the key schema inside, and
//! a cursor that was altered, forged, or issued to another tenant does not open.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

/// The shortest key material accepted: 32 bytes, so the key has at least 256 bits when the
/// material is random text.
pub const CURSOR_KEY_MIN_BYTES: usize = 32;
/// Binds a sealed cursor to its format and to the tenant, and separates the derived key from any
/// other use of the same secret.
const CONTEXT: &[u8] = b"vidpipe-cursor-v1\0";
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CursorKeyError {
    #[error("cursor key material must be at least {CURSOR_KEY_MIN_BYTES} bytes (got {0})")]
    TooShort(usize),
    #[error("no randomness from the operating system for a cursor key")]
    NoRandomness,
}

/// Seals and opens cursors. `Debug` never shows the key.
pub struct CursorSeal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorSeal(..)")
    }
}

impl CursorSeal {
    /// A seal under a deployment's secret: every instance given the same material reads every
    /// other's cursors.
    pub fn from_secret(material: &[u8]) -> Result<Self, CursorKeyError> {
        if material.len() < CURSOR_KEY_MIN_BYTES {
            return Err(CursorKeyError::TooShort(material.len()));
        }
        let derived = digest(&SHA256, &[CONTEXT, material].concat());
        Ok(Self::with_key(derived.as_ref()))
    }

    /// A seal under a fresh random key: cursors work only within this process. For the embedded
    /// pipeline and tests, and a deployment that configured no key.
    pub fn ephemeral() -> Result<Self, CursorKeyError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| CursorKeyError::NoRandomness)?;
        Ok(Self::with_key(&key))
    }

    fn with_key(key: &[u8]) -> Self {
        // A 32-byte key is always a valid AES-256 key.
        let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        }
    }

    /// The store's cursor, sealed for `tenant`: URL-safe base64 of version, nonce, ciphertext.
    pub fn seal(&self, tenant: &str, inner: &str) -> Result<String, CursorKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CursorKeyError::NoRandomness)?;
        let mut sealed = inner.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aad(tenant),
                &mut sealed,
            )
            // Only a plaintext past AES-GCM's 64 GiB limit fails; a cursor is a few hundred bytes.
            .unwrap_or_else(|_| unreachable!());
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The store's cursor, when `sealed` is one this key sealed for `tenant` and unaltered.
    pub fn open(&self, tenant: &str, sealed: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aad(tenant), &mut buffer)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

fn aad(tenant: &str) -> Aad<Vec<u8>> {
    Aad::from([CONTEXT, tenant.as_bytes()].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: &str = "7b22706b223a224a4f42236a6f625f31227d";

    fn seal() -> CursorSeal {
        CursorSeal::from_secret(b"0123456789abcdef0123456789abcdef").expect("key")
    }

    #[test]
    fn a_sealed_cursor_opens_for_its_tenant_only_and_hides_the_key() {
        let s = seal();
        let sealed = s.seal("alice", INNER).expect("seal");
        assert_eq!(s.open("alice", &sealed).as_deref(), Some(INNER));
        assert_eq!(s.open("bob", &sealed), None);
        assert!(!sealed.contains(INNER), "{sealed}");
        // Two seals of one position differ (fresh nonce), so pages cannot be correlated.
        assert_ne!(sealed, s.seal("alice", INNER).expect("seal"));
        // Another deployment's key opens nothing.
        let other = CursorSeal::from_secret(b"fedcba9876543210fedcba9876543210").expect("key");
        assert_eq!(other.open("alice", &sealed), None);
        // The same secret in another instance does.
        assert_eq!(seal().open("alice", &sealed).as_deref(), Some(INNER));
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let s = seal();
        let sealed = s.seal("alice", INNER).expect("seal");
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("b64");
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            assert_eq!(
                s.open("alice", &URL_SAFE_NO_PAD.encode(&altered)),
                None,
                "byte {i}"
            );
        }
        for junk in ["", "AAAA", "%%%", INNER, &sealed[..sealed.len() - 2]] {
            assert_eq!(s.open("alice", junk), None, "{junk:?}");
        }
    }

    #[test]
    fn short_key_material_is_refused() {
        assert!(matches!(
            CursorSeal::from_secret(b"short"),
            Err(CursorKeyError::TooShort(5))
        ));
    }
}
