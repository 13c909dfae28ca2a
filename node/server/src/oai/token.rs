//! Resumption tokens: where a ListRecords or ListIdentifiers harvest
//! stands and the arguments it began with, sealed with an HMAC-SHA256 key
//! derived from the node's identity key, so a token stays valid across
//! restarts and index rebuilds and cannot be forged or altered. Tokens do
//! not expire: the position they hold ([`Position`]) is a place in what
//! this node stored, which never moves.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meridian_core::oai::Position;
use serde::{Deserialize, Serialize};

use super::request::{ListArgs, Prefix, MAX_TOKEN_LEN};

/// Format of the token body; a token of another format is refused.
const FORMAT: u8 = 1;
/// Domain of the MAC, so no other sealed value of the node passes as a token.
const MAC_DOMAIN: &[u8] = b"meridian oai resumption token v1\0";

/// What a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// ListRecords (true) or ListIdentifiers (false).
    pub records: bool,
    pub args: ListArgs,
    pub position: Position,
    /// Records already sent in this list before the next page.
    pub cursor: u64,
    /// Size of the complete list, when it was counted.
    pub complete: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    f: u8,
    r: bool,
    p: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<u64>,
    /// Day granularity of from/until, to echo the request as it was made.
    #[serde(default)]
    d: bool,
    q: u64,
    i: u64,
    c: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
}

/// Seals and opens tokens.
pub struct TokenKey(ring::hmac::Key);

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    fn message(body: &[u8]) -> Vec<u8> {
        let mut message = MAC_DOMAIN.to_vec();
        message.extend_from_slice(body);
        message
    }

    pub fn seal(&self, token: &Token) -> String {
        let wire = Wire {
            f: FORMAT,
            r: token.records,
            p: token.args.prefix.name().to_owned(),
            s: token.args.set.as_ref().map(super::request::set_spec),
            a: token.args.from,
            u: token.args.until,
            d: token.args.day_granularity,
            q: token.position.seq,
            i: token.position.index,
            c: token.cursor,
            n: token.complete,
        };
        // Plain data serializes.
        let mut body = serde_json::to_vec(&wire).unwrap_or_default();
        let mac = ring::hmac::sign(&self.0, &Self::message(&body));
        body.extend_from_slice(mac.as_ref());
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The token in `sealed`, or why it is not one of this node's.
    pub fn open(&self, sealed: &str) -> Result<Token, String> {
        let forged =
            || "the resumptionToken was not issued by this repository or was altered".to_owned();
        if sealed.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the resumptionToken is {} characters long; this repository's are at most {MAX_TOKEN_LEN}",
                sealed.len()
            ));
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| forged())?;
        if bytes.len() <= 32 {
            return Err(forged());
        }
        let (body, mac) = bytes.split_at(bytes.len() - 32);
        ring::hmac::verify(&self.0, &Self::message(body), mac).map_err(|_| forged())?;
        let wire: Wire = serde_json::from_slice(body).map_err(|_| forged())?;
        if wire.f != FORMAT {
            return Err("the resumptionToken comes from another version of this repository; start the list again".into());
        }
        let prefix = Prefix::parse(&wire.p).ok_or_else(forged)?;
        let set = wire
            .s
            .as_deref()
            .map(super::request::parse_set)
            .transpose()
            .map_err(|_| forged())?;
        Ok(Token {
            records: wire.r,
            args: ListArgs {
                prefix,
                set,
                from: wire.a,
                until: wire.u,
                day_granularity: wire.d,
            },
            position: Position {
                seq: wire.q,
                index: wire.i,
            },
            cursor: wire.c,
            complete: wire.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::oai::Set;

    fn token() -> Token {
        Token {
            records: true,
            args: ListArgs {
                prefix: Prefix::OaiDatacite,
                set: Some(Set::Project("Arctic sea ice".into())),
                from: Some(1_700_000_000),
                until: None,
                day_granularity: false,
            },
            position: Position { seq: 42, index: 7 },
            cursor: 300,
            complete: Some(1234),
        }
    }

    #[test]
    fn a_sealed_token_opens_to_what_was_sealed() {
        let key = TokenKey::new(&[7; 32]);
        assert_eq!(key.open(&key.seal(&token())).unwrap(), token());
    }

    #[test]
    fn altered_foreign_and_oversized_tokens_are_refused() {
        let key = TokenKey::new(&[7; 32]);
        let sealed = key.seal(&token());
        // Any single changed character.
        for at in [0, sealed.len() / 2, sealed.len() - 1] {
            let mut altered: Vec<char> = sealed.chars().collect();
            altered[at] = if altered[at] == 'A' { 'B' } else { 'A' };
            let altered: String = altered.into_iter().collect();
            assert!(key.open(&altered).is_err(), "altered at {at}");
        }
        let other = TokenKey::new(&[8; 32]);
        assert!(other.open(&sealed).unwrap_err().contains("not issued"));
        assert!(key.open("").is_err());
        assert!(key.open("!!!").is_err());
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        assert!(key.open(&long).unwrap_err().contains("at most"));
    }

    /// A list of the longest set a record can make, with every number at
    /// its largest, gets a token that is accepted back: as an argument and
    /// when opened.
    #[test]
    fn the_token_of_the_longest_set_is_accepted() {
        use super::super::request::{check, set_spec, MAX_SET_BYTES};
        use meridian_core::record::MAX_NAME_CHARS;
        let key = TokenKey::new(&[7; 32]);
        // Four bytes a character, each escaped as `~XX`.
        let project = "🧊".repeat(MAX_NAME_CHARS);
        let set = Set::Project(project);
        assert_eq!(set_spec(&set).len(), MAX_SET_BYTES);
        let longest = Token {
            records: false,
            args: ListArgs {
                prefix: Prefix::OaiDatacite,
                set: Some(set),
                from: Some(u64::MAX),
                until: Some(u64::MAX),
                day_granularity: true,
            },
            position: Position {
                seq: u64::MAX,
                index: u64::MAX,
            },
            cursor: u64::MAX,
            complete: Some(u64::MAX),
        };
        let sealed = key.seal(&longest);
        assert!(sealed.len() <= MAX_TOKEN_LEN, "{} characters", sealed.len());
        assert_eq!(key.open(&sealed).unwrap(), longest);
        let pairs = |args: &[(&str, &str)]| {
            args.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        check(pairs(&[
            ("verb", "ListIdentifiers"),
            ("resumptionToken", &sealed),
        ]))
        .unwrap();
        let spec = set_spec(longest.args.set.as_ref().unwrap());
        check(pairs(&[
            ("verb", "ListIdentifiers"),
            ("metadataPrefix", "oai_datacite"),
            ("set", &spec),
        ]))
        .unwrap();
    }
}
