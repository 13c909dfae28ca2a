//! The names the domain passes around, as types: a [`NodeId`] is not any
//! string, a [`RecordId`] is not a node id, a [`LogIndex`] is a position in
//! a log and not a count of entries. Each is checked once, where it enters
//! the node, and read as `&str` (or `u64`) wherever a plain value will do.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// Longest record id, in bytes.
pub const MAX_RECORD_ID_BYTES: usize = 256;
/// Longest node id, in characters.
pub const MAX_NODE_ID_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

/// A node's id (`polar-dc`): the origin of every record it holds. Short and
/// lowercase, since it appears in keys, logs and URLs: 1 to 64 of `a-z`,
/// `0-9`, `-` and `.`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if text.is_empty() || text.len() > MAX_NODE_ID_CHARS {
            return Err(IdError(format!(
                "must be 1 to {MAX_NODE_ID_CHARS} characters"
            )));
        }
        if !text.chars().all(ok_char) || text.starts_with(['-', '.']) {
            return Err(IdError(format!(
                "`{text}` may hold only a-z, 0-9, '-' and '.', and must start with a letter or digit"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record's id within its origin (a DOI, an accession): at most 256
/// bytes, no whitespace or control characters, never empty.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(String);

impl RecordId {
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError("is empty".into()));
        }
        if text.len() > MAX_RECORD_ID_BYTES {
            return Err(IdError(format!(
                "is {} bytes long; at most {MAX_RECORD_ID_BYTES} are allowed",
                text.len()
            )));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdError(format!(
                "`{}` contains whitespace or a control character (U+{:04X})",
                text.escape_debug(),
                u32::from(c)
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_id {
    ($name:ident) => {
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<&$name> for String {
            fn eq(&self, other: &&$name) -> bool {
                *self == other.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }
    };
}

text_id!(NodeId);
text_id!(RecordId);

impl schemars::JsonSchema for NodeId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NodeId".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// A position in an origin's log: entry 0 is its first. A log of `n`
/// entries holds positions `0..n`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub fn get(self) -> u64 {
        self.0
    }

    /// The position after this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<LogIndex> for u64 {
    fn from(index: LogIndex) -> u64 {
        index.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_checked() {
        assert!(NodeId::parse("polar-dc.cn").is_ok());
        for bad in ["", "Polar", "a b", "-x", "x/y", &"a".repeat(65)] {
            assert!(NodeId::parse(bad).is_err(), "{bad}");
        }
        let parsed: Result<NodeId, _> = serde_json::from_str("\"Bad Name\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn record_ids_are_checked() {
        assert!(RecordId::parse("10.1234/pdc.2021.0412").is_ok());
        for bad in ["", "a b", "tab\there", "nul\0", &"x".repeat(257)] {
            assert!(RecordId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_read_as_text() {
        let id = NodeId::parse("polar").unwrap();
        assert_eq!(id, "polar");
        assert_eq!(&*id, "polar");
        assert_eq!(id.to_string(), "polar");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"polar\"");
    }
}
