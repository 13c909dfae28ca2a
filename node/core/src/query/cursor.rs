//! The `after` token of cursor pagination: opaque to clients, versioned, and
//! bound to the request it came from.
//!
//! A token names the point-in-time snapshot its page was read from (when
//! the node still holds it, the next page reads the same snapshot, so
//! inserts, deletes and score changes underneath neither skip nor repeat a
//! hit) and the sort position of the last hit (the fallback when the
//! snapshot has expired: search-after on (sort value, record key)).
//!
//! What a client holds is the token sealed by [`CursorKey`]: the time the
//! search's first page was read and an HMAC-SHA256 under a secret of this
//! node. A cursor that was altered, or made anywhere but here, is refused
//! before it is read; one older than [`MAX_CURSOR_AGE`] has expired, however
//! often it was used, so no client can keep a snapshot alive for long.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{SearchError, Sort};

/// Format tag inside every token; a token of another format is refused.
const FORMAT: &str = "mc1";
/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 4096;
/// Longer sealed tokens are refused before their MAC is checked.
const MAX_SEALED_LEN: usize = MAX_TOKEN_LEN + 64;
/// How long after a search's first page its cursors are accepted.
pub const MAX_CURSOR_AGE: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// What the MAC covers besides the token, so it is no MAC of anything else.
const MAC_DOMAIN: &[u8] = b"meridian search cursor v1\0";

/// The decoded content of an `after` token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// (process epoch, searcher generation) of the snapshot of the page.
    pub snapshot: Option<(u64, u64)>,
    /// Fingerprint of the request (see `SearchRequest::plan`).
    pub fingerprint: u64,
    pub sort: Sort,
    /// Sort value of the last hit, mapped to an order-preserving u64.
    pub primary: u64,
    /// Key of the last hit.
    pub origin: String,
    pub id: String,
    /// What the page's caller could see ([`crate::visibility::Viewer::seen`]):
    /// a next page for a caller who now sees more does not take a copy of
    /// a DOI ranked before it for one an earlier page showed. 0 in tokens
    /// made before it was carried.
    #[serde(default)]
    pub seen: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    f: String,
    #[serde(flatten)]
    cursor: Cursor,
}

impl Cursor {
    /// The token handed to clients.
    pub fn encode(&self) -> String {
        let wire = Wire {
            f: FORMAT.to_owned(),
            cursor: self.clone(),
        };
        // Serialising plain data to a Vec cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a token; anything malformed is a `SearchError::Cursor`.
    pub fn decode(token: &str) -> Result<Self, SearchError> {
        let bad = || SearchError::Cursor("the cursor is malformed".to_owned());
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad());
        }
        let json = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| bad())?;
        if wire.f != FORMAT {
            return Err(SearchError::Cursor(
                "the cursor comes from another version of the node".to_owned(),
            ));
        }
        Ok(wire.cursor)
    }
}

/// Seals and opens the cursors handed to clients (HMAC-SHA256).
pub struct CursorKey(ring::hmac::Key);

impl CursorKey {
    /// A key from a secret of this node (see `NodeKey::derive_secret`).
    pub fn new(secret: zeroize::Zeroizing<[u8; 32]>) -> Self {
        Self(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            secret.as_slice(),
        ))
    }

    /// What the MAC covers: the body, domain-separated.
    fn message(body: &[u8]) -> Vec<u8> {
        let mut message = MAC_DOMAIN.to_vec();
        message.extend_from_slice(body);
        message
    }

    /// `token` as a client receives it: `issued` (Unix seconds of the
    /// search's first page) and the token, under this node's MAC.
    pub fn seal(&self, token: &str, issued: u64) -> String {
        let mut body = issued.to_be_bytes().to_vec();
        body.extend_from_slice(token.as_bytes());
        let mac = ring::hmac::sign(&self.0, &Self::message(&body));
        body.extend_from_slice(mac.as_ref());
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The token inside a sealed cursor and when its search began, if the
    /// MAC holds and the cursor is not older than [`MAX_CURSOR_AGE`] at
    /// `now` (Unix seconds).
    pub fn open(&self, sealed: &str, now: u64) -> Result<(String, u64), SearchError> {
        let forged = || {
            SearchError::Cursor(
                "the cursor was not issued by this node or was altered; run the search again"
                    .to_owned(),
            )
        };
        if sealed.len() > MAX_SEALED_LEN {
            return Err(forged());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed.trim())
            .map_err(|_| forged())?;
        if bytes.len() < 8 + 32 {
            return Err(forged());
        }
        let (body, mac) = bytes.split_at(bytes.len() - 32);
        // In constant time.
        ring::hmac::verify(&self.0, &Self::message(body), mac).map_err(|_| forged())?;
        let (issued, token) = body.split_at(8);
        let issued = u64::from_be_bytes(issued.try_into().map_err(|_| forged())?);
        let age = now.saturating_sub(issued);
        if age > MAX_CURSOR_AGE.as_secs() {
            return Err(SearchError::Cursor(format!(
                "the cursor expired: its search began {age} s ago, cursors last {} s; run the search again",
                MAX_CURSOR_AGE.as_secs()
            )));
        }
        let token = String::from_utf8(token.to_vec()).map_err(|_| forged())?;
        Ok((token, issued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let cursor = Cursor {
            snapshot: Some((u64::MAX, 3)),
            fingerprint: 42,
            sort: Sort::Updated,
            primary: 1 << 63,
            origin: "pdc.example".into(),
            id: "PDC-2021/0412 é".into(),
            seen: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn refuses_garbage_and_other_formats() {
        for token in ["", "!!!", "eyJ9", &"A".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(matches!(Cursor::decode(token), Err(SearchError::Cursor(_))));
        }
        let other = URL_SAFE_NO_PAD.encode(
            br#"{"f":"mc0","snapshot":null,"fingerprint":1,"sort":"size","primary":1,"origin":"a","id":"b"}"#,
        );
        let error = Cursor::decode(&other).unwrap_err();
        assert!(error.to_string().contains("another version"), "{error}");
    }

    fn key(byte: u8) -> CursorKey {
        CursorKey::new(zeroize::Zeroizing::new([byte; 32]))
    }

    /// Issue 9, item 6: a cursor is accepted only as this node issued it,
    /// and only for [`MAX_CURSOR_AGE`] after its search began.
    #[test]
    fn revocation_is_final_everywhere_cursors_are_authenticated_and_expire() {
        let token = Cursor {
            snapshot: Some((1, 2)),
            fingerprint: 3,
            sort: Sort::Relevance,
            primary: 4,
            origin: "a".into(),
            id: "b".into(),
            seen: 5,
        }
        .encode();
        let sealed = key(1).seal(&token, 1_000);
        assert_eq!(key(1).open(&sealed, 1_000).unwrap(), (token.clone(), 1_000));
        let age = MAX_CURSOR_AGE.as_secs();
        assert!(key(1).open(&sealed, 1_000 + age).is_ok());

        let expired = key(1).open(&sealed, 1_001 + age).unwrap_err().to_string();
        assert!(expired.contains("the cursor expired"), "{expired}");
        let foreign = key(2).open(&sealed, 1_000).unwrap_err().to_string();
        assert!(foreign.contains("not issued by this node"), "{foreign}");
        // Any flipped bit, in the time, the token or the MAC, is refused.
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(
                matches!(key(1).open(&tampered, 1_000), Err(SearchError::Cursor(_))),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        // The unsealed token is refused too.
        assert!(key(1).open(&token, 1_000).is_err());
    }

    proptest! {
        #[test]
        fn sealed_never_panics_on_arbitrary_tokens(token in ".{0,200}") {
            let _ = key(0).open(&token, 0);
        }

        #[test]
        fn never_panics_on_arbitrary_tokens(token in ".{0,200}") {
            let _ = Cursor::decode(&token);
        }
    }
}
