//! The page tokens `ListRecords` hands out: where a listing stands, sealed
//! (ChaCha20-Poly1305 under a secret of this node, bound to the origin
//! listed) and padded to one length, so a token tells its holder nothing.
//!
//! A listing's position is the last entry it scanned. When the deadline
//! passes before a page finds a record its caller may see, that entry is
//! one the caller may not see, and a plain token would name it; sealed, it
//! lets the listing go on past a run of hidden records longer than one
//! request's deadline without telling of them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, MAX_TAG_LEN, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};

use meridian_core::ids::MAX_RECORD_ID_BYTES;

/// What every token starts with.
const PREFIX: &str = "p1.";
/// What the seal binds besides the origin, so it is no seal of anything else.
const DOMAIN: &[u8] = b"meridian list position v1\0";
/// Every position is padded to this many bytes: a length prefix of two
/// bytes and the longest core token (the base64 of the longest record id).
const PADDED: usize = 2 + unpadded_base64_len(MAX_RECORD_ID_BYTES);
/// The length of every sealed token (ChaCha20-Poly1305's tag is the
/// longest ring has).
const SEALED_LEN: usize = PREFIX.len() + unpadded_base64_len(NONCE_LEN + PADDED + MAX_TAG_LEN);

/// Characters of `bytes` bytes in base64 without padding.
const fn unpadded_base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// Seals and opens positions.
pub struct PositionKey {
    key: LessSafeKey,
    random: SystemRandom,
}

impl PositionKey {
    /// A key from a secret of this node (`NodeKey::derive_secret`).
    pub fn new(secret: &[u8; 32]) -> Self {
        // A 32-byte key is the length ChaCha20-Poly1305 takes.
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, secret).expect("a 32-byte ChaCha20-Poly1305 key");
        Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    fn aad(origin: &str) -> Vec<u8> {
        let mut aad = DOMAIN.to_vec();
        aad.extend_from_slice(origin.as_bytes());
        aad
    }

    /// `position` (the core's page token) as the caller receives it for
    /// a listing of `origin`; empty stays empty (the listing is done).
    pub fn seal(&self, origin: &str, position: &str) -> Result<String, SealError> {
        if position.is_empty() {
            return Ok(String::new());
        }
        if position.len() > PADDED - 2 {
            return Err(SealError);
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError)?;
        let mut body = Vec::with_capacity(PADDED + MAX_TAG_LEN);
        body.extend_from_slice(&(position.len() as u16).to_be_bytes());
        body.extend_from_slice(position.as_bytes());
        body.resize(PADDED, 0);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(origin)),
                &mut body,
            )
            .map_err(|_| SealError)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The core's page token inside `token`, a token a listing of `origin`
    /// handed out; empty for none (the listing's start). Nothing else is
    /// taken: a token the caller could write would let it start after any
    /// id it likes, and a page cut short after one entry would then tell
    /// whether the record after that id is one it may not see.
    pub fn open(&self, origin: &str, token: &str) -> Result<String, OpenError> {
        if token.is_empty() {
            return Ok(String::new());
        }
        let Some(body) = token.strip_prefix(PREFIX) else {
            return Err(OpenError);
        };
        if token.len() != SEALED_LEN {
            return Err(OpenError);
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| OpenError)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(origin)), &mut sealed)
            .map_err(|_| OpenError)?;
        let (len, rest) = plain.split_at_checked(2).ok_or(OpenError)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let position = rest.get(..len).ok_or(OpenError)?;
        String::from_utf8(position.to_vec()).map_err(|_| OpenError)
    }
}

/// A position too long to seal (not one the core hands out), or no
/// randomness for its nonce.
#[derive(Debug)]
pub struct SealError;

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a listing's position could not be sealed")
    }
}

impl std::error::Error for SealError {}

/// A token this node did not issue for the listing it is given to.
#[derive(Debug)]
pub struct OpenError;

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the page token was not issued by this node for this origin, or was altered; \
             start the listing again without one",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PositionKey {
        PositionKey::new(&[seed; 32])
    }

    #[test]
    fn a_sealed_position_opens_for_its_origin_only() {
        let key = key(1);
        let sealed = key.seal("polar", "aGlkZGVu").unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("aGlkZGVu"));
        assert_eq!(key.open("polar", &sealed).unwrap(), "aGlkZGVu");
        assert!(key.open("marine", &sealed).is_err(), "bound to its origin");
        assert!(super::PositionKey::new(&[2; 32])
            .open("polar", &sealed)
            .is_err());
        assert_eq!(key.seal("polar", "").unwrap(), "", "the end stays empty");
    }

    #[test]
    fn every_sealed_token_has_one_length_and_differs_each_time() {
        let key = key(1);
        let longest = "a".repeat(PADDED - 2);
        let short = key.seal("polar", "YQ").unwrap();
        let long = key.seal("polar", &longest).unwrap();
        assert_eq!(short.len(), SEALED_LEN);
        assert_eq!(long.len(), SEALED_LEN);
        assert_eq!(key.open("polar", &long).unwrap(), longest);
        assert_ne!(
            short,
            key.seal("polar", "YQ").unwrap(),
            "a fresh nonce each time"
        );
        assert!(key.seal("polar", &format!("{longest}a")).is_err());
        // The core's token for the longest record id fits.
        let id = "x".repeat(MAX_RECORD_ID_BYTES);
        assert!(key.seal("polar", &URL_SAFE_NO_PAD.encode(id)).is_ok());
    }

    #[test]
    fn altered_foreign_or_plain_tokens_are_refused() {
        let key = key(1);
        let sealed = key.seal("polar", "YQ").unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let at = PREFIX.len() + 20;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(key.open("polar", &altered).is_err());
        for bad in [
            "p1.",
            "p1.!!!!",
            &sealed[..sealed.len() - 1],
            &format!("{sealed}A"),
        ] {
            assert!(key.open("polar", bad).is_err(), "{bad}");
        }
        assert!(key.open("polar", "YQ").is_err(), "a token the caller wrote");
        assert_eq!(key.open("polar", "").unwrap(), "");
    }
}
