//! The `after` token of cursor pagination: opaque to clients, versioned, and
//! bound to the request it came from.
//!
//! A token names the point-in-time snapshot its page was read from (when
//! the node still holds it, the next page reads the same snapshot, so
//! inserts, deletes and score changes underneath neither skip nor repeat a
//! hit) and the sort position of the last hit (the fallback when the
//! snapshot has expired: search-after on (sort value, record key)).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{SearchError, Sort};

/// Format tag inside every token; a token of another format is refused.
const FORMAT: &str = "mc1";
/// Longer tokens are refused before decoding.
const MAX_TOKEN_LEN: usize = 4096;

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

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_tokens(token in ".{0,200}") {
            let _ = Cursor::decode(&token);
        }
    }
}
