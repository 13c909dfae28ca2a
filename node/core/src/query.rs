//! The search request model: what a client may ask of the holdings index
//! and what comes back. Independent of tonic (the server maps these types at
//! the edge) and of tantivy (the `index` module executes a [`Plan`]). See
//! DESIGN.md §8 (search); who may see what is [`crate::visibility`]'s.
//!
//! - [`expr`]: the query language of [`SearchRequest::text`].
//! - [`cursor`]: the opaque `after` token of cursor pagination.

pub mod cursor;
pub mod expr;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::proto::{Access, BoundingBox, Visibility};

use self::cursor::Cursor;
use self::expr::Expr;

/// Hits per page when the request does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest page a request may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Most values one filter (disciplines, origins, access, licences,
/// formats) may name: each is looked up in every segment.
pub const MAX_FILTER_VALUES: usize = 256;
/// Longest value of a filter, in bytes: node ids, disciplines, licences
/// and formats are short words. A live search copies the request to every
/// peer, and each peer keeps its filters in its audit for months.
pub const MAX_FILTER_VALUE_BYTES: usize = 256;
/// Longest `time_from` or `time_to`, in bytes, spaces around it included:
/// an RFC 3339 time is 35 at most. Bounded for the same reason as
/// [`MAX_FILTER_VALUE_BYTES`].
pub const MAX_TIME_BYTES: usize = 64;
/// Values returned per facet, the most frequent first.
pub const FACET_TOP_N: usize = 20;
/// The facets of [`SearchResults::facets`], in display order.
pub const FACETS: [&str; 6] = [
    "discipline",
    "origin",
    "access",
    "license",
    "format",
    "year",
];

/// Which holdings a search covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// The records whose origin is `node`: the answering node's own holdings.
    /// The server fills in its own node id.
    Local { node: String },
    /// The whole local index: own and replicated records.
    #[default]
    Federation,
    /// Fan out to peers now. The index answers it like `Federation`; the
    /// fan-out lives in the server.
    Live,
}

/// Order of the hits. Every order is descending and ties are broken by the
/// record key (origin, then id, ascending), so the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// BM25 score, best first.
    #[default]
    Relevance,
    /// `updated_at`, newest first; records without one last.
    Updated,
    /// `size_bytes`, largest first.
    Size,
}

/// One search. `Default` is "everything visible, relevance order, 20 hits".
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Query text in the language of [`query`]; empty matches everything.
    pub text: String,
    pub scope: Scope,
    /// Filters: a record matches a filter when it has one of the listed
    /// values (OR within a filter); every non-empty filter must match (AND
    /// across filters). Values are exact, as the facets report them.
    pub disciplines: Vec<String>,
    pub origins: Vec<String>,
    /// Records with one of these access levels.
    pub access: Vec<Access>,
    pub licenses: Vec<String>,
    pub formats: Vec<String>,
    /// Publication year, inclusive; either end open.
    pub year: Option<(Option<u32>, Option<u32>)>,
    /// Records with a box intersecting this one (edges touching count).
    /// `west > east` crosses the antimeridian.
    pub bbox: Option<BoundingBox>,
    /// Records whose temporal coverage overlaps [from, to]; either end open.
    /// Dates as records write them: `YYYY`, `YYYY-MM-DD` or RFC 3339.
    pub time_from: Option<String>,
    pub time_to: Option<String>,
    pub sort: Sort,
    /// Hits per page, at most [`MAX_LIMIT`]. 0 returns counts and facets only.
    pub limit: usize,
    /// `next_cursor` of the previous page of the same request.
    pub after: Option<String>,
    /// Compute facet counts.
    pub facets: bool,
    /// Fill [`Hit::snippet`] with a highlighted fragment.
    pub highlight: bool,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            text: String::new(),
            scope: Scope::default(),
            disciplines: Vec::new(),
            origins: Vec::new(),
            access: Vec::new(),
            licenses: Vec::new(),
            formats: Vec::new(),
            year: None,
            bbox: None,
            time_from: None,
            time_to: None,
            sort: Sort::default(),
            limit: DEFAULT_LIMIT,
            after: None,
            facets: false,
            highlight: false,
        }
    }
}

/// One page of an answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    /// Number of records matching the request that the viewer may see:
    /// exact unless `estimated`.
    pub total: u64,
    /// The total and the facet counts are estimated from a sample of the
    /// index (a search matching hundreds of thousands of records); the
    /// hits are exact either way.
    pub estimated: bool,
    /// Facet name (see [`FACETS`]) → the top values with their counts over
    /// every visible match, most frequent first. Empty unless asked for.
    pub facets: BTreeMap<String, Vec<(String, u64)>>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One matching record, as much as a result list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub origin: String,
    pub id: String,
    pub version: u64,
    pub title: String,
    pub doi: String,
    pub publication_year: u32,
    pub updated_at: String,
    pub size_bytes: u64,
    /// BM25 score under `Sort::Relevance` with query text; 0 otherwise.
    pub score: f32,
    /// HTML fragment with matches in `<b>…</b>`, text escaped. Empty unless
    /// `highlight` was asked for.
    pub snippet: String,
    pub access: Access,
    pub visibility: Visibility,
    /// Other origins' copies of the same DOI merged into this hit, which is
    /// the authoritative one ([`crate::search::merge_copies`] over a
    /// search's pages, [`crate::search::dedupe`] over a live answer).
    pub also_at: Vec<AlsoAt>,
    /// From this node's index, which holds only records whose signature it
    /// verified; false for a peer's live answer, which is its word.
    pub verified: bool,
}

/// Another origin's copy of a hit's DOI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlsoAt {
    pub origin: String,
    pub id: String,
}

/// Why a search was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query text does not parse. `position` is the 0-based character
    /// (Unicode scalar) offset of the problem when there is one.
    #[error("query error{}: {message}", position.map(|p| format!(" at character {p}")).unwrap_or_default())]
    Query {
        position: Option<usize>,
        message: String,
    },
    /// A filter, the limit or another field of the request is invalid.
    #[error("invalid search request: {0}")]
    Invalid(String),
    /// The `after` token is malformed or belongs to another request.
    #[error("invalid cursor: {0}")]
    Cursor(String),
    /// The index failed. A bug or a broken disk: never caused by the request.
    #[error("search index failure")]
    Index(#[source] tantivy::TantivyError),
    /// Another part of the node needed for the answer failed.
    #[error("search unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the search was done: it was given up.
    #[error(
        "the search did not finish before its deadline; narrow the query (fewer common words, \
         more filters) or allow a longer deadline"
    )]
    Deadline,
}

impl From<expr::QueryError> for SearchError {
    fn from(error: expr::QueryError) -> Self {
        Self::Query {
            position: Some(error.position),
            message: error.message,
        }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(error: tantivy::TantivyError) -> Self {
        Self::Index(error)
    }
}

/// An inclusive range whose ends may be open (`None`).
pub type OpenRange<T> = (Option<T>, Option<T>);

/// A request checked and parsed: what the index executes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub query: Expr,
    /// Restrict to this origin (`Scope::Local`).
    pub local_origin: Option<String>,
    pub disciplines: Vec<String>,
    pub origins: Vec<String>,
    /// Normalised access names (see [`crate::record::access_name`]).
    pub access: Vec<String>,
    pub licenses: Vec<String>,
    pub formats: Vec<String>,
    /// Inclusive publication-year range; `None` when unrestricted.
    pub year: Option<OpenRange<u64>>,
    pub bbox: Option<BoundingBox>,
    /// Inclusive span in Unix seconds; `None` when there is no temporal
    /// filter. An open end is `None` inside.
    pub time: Option<OpenRange<i64>>,
    pub sort: Sort,
    pub limit: usize,
    pub after: Option<Cursor>,
    pub facets: bool,
    pub highlight: bool,
    /// Identifies the request (everything that decides the match set and
    /// the order) so a cursor is only accepted by the request it came from.
    pub fingerprint: u64,
    /// Scores are merged with other nodes' (`Scope::Live`), so they may
    /// depend on the record and the query only, never on this index's
    /// statistics (`docs/decisions/live-search-on-behalf-of.md`).
    pub comparable_scores: bool,
}

impl SearchRequest {
    /// Validates the request and parses its query text.
    pub fn plan(&self) -> Result<Plan, SearchError> {
        let query = expr::parse(&self.text)?;
        if self.limit > MAX_LIMIT {
            return Err(SearchError::Invalid(format!(
                "limit {} is above the maximum of {MAX_LIMIT}",
                self.limit
            )));
        }
        for (field, count) in [
            ("disciplines", self.disciplines.len()),
            ("origins", self.origins.len()),
            ("access", self.access.len()),
            ("licenses", self.licenses.len()),
            ("formats", self.formats.len()),
        ] {
            if count > MAX_FILTER_VALUES {
                return Err(SearchError::Invalid(format!(
                    "{field}: {count} values, at most {MAX_FILTER_VALUES}"
                )));
            }
        }
        for (field, values) in [
            ("disciplines", &self.disciplines),
            ("origins", &self.origins),
            ("licenses", &self.licenses),
            ("formats", &self.formats),
        ] {
            if let Some((i, value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.len() > MAX_FILTER_VALUE_BYTES)
            {
                return Err(SearchError::Invalid(format!(
                    "{field}[{i}]: {} bytes, at most {MAX_FILTER_VALUE_BYTES}",
                    value.len()
                )));
            }
        }
        let access = self
            .access
            .iter()
            .map(|access| match access {
                Access::Unspecified => Err(SearchError::Invalid(
                    "access: a filter value must be open, registered, embargoed or restricted"
                        .into(),
                )),
                known => Ok(crate::record::access_name(*known as i32).to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let year = match self.year {
            None | Some((None, None)) => None,
            Some((Some(from), Some(to))) if from > to => {
                return Err(SearchError::Invalid(format!(
                    "year range {from}..{to} is empty"
                )))
            }
            Some((from, to)) => Some((from.map(u64::from), to.map(u64::from))),
        };
        if let Some(bbox) = &self.bbox {
            check_bbox(bbox)?;
        }
        let time = time_span(self.time_from.as_deref(), self.time_to.as_deref())?;
        let fingerprint = self.fingerprint();
        let after = match &self.after {
            None => None,
            Some(token) => {
                let cursor = Cursor::decode(token)?;
                if cursor.fingerprint != fingerprint || cursor.sort != self.sort {
                    return Err(SearchError::Cursor(
                        "the cursor belongs to a different query, filters or sort".into(),
                    ));
                }
                Some(cursor)
            }
        };
        let local_origin = match &self.scope {
            Scope::Local { node } => Some(node.clone()),
            Scope::Federation | Scope::Live => None,
        };
        Ok(Plan {
            query,
            local_origin,
            disciplines: self.disciplines.clone(),
            origins: self.origins.clone(),
            access,
            licenses: self.licenses.clone(),
            formats: self.formats.clone(),
            year,
            bbox: self.bbox,
            time,
            sort: self.sort,
            limit: self.limit,
            after,
            facets: self.facets,
            highlight: self.highlight,
            fingerprint,
            comparable_scores: matches!(self.scope, Scope::Live),
        })
    }

    /// A stable digest of what decides the match set and the order (not the
    /// page size, the cursor, facets or highlighting): each part tagged and
    /// length-prefixed, so no two requests share an encoding.
    fn fingerprint(&self) -> u64 {
        let mut digest = Sha256::new();
        let mut part = |tag: u8, bytes: &[u8]| {
            digest.update([tag]);
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        part(b'q', self.text.as_bytes());
        match &self.scope {
            Scope::Local { node } => part(b'L', node.as_bytes()),
            Scope::Federation | Scope::Live => part(b'F', b""),
        }
        let lists = [
            (b'd', &self.disciplines),
            (b'o', &self.origins),
            (b'l', &self.licenses),
            (b'f', &self.formats),
        ];
        for (tag, values) in lists {
            for value in values {
                part(tag, value.as_bytes());
            }
        }
        for access in &self.access {
            part(b'a', &(*access as i32).to_be_bytes());
        }
        let bound = |value: Option<u32>| value.map_or(-1, i64::from).to_be_bytes();
        if let Some((from, to)) = self.year {
            part(b'y', &[bound(from), bound(to)].concat());
        }
        if let Some(b) = self.bbox {
            let corners = [b.west, b.south, b.east, b.north].map(|c| c.to_bits().to_be_bytes());
            part(b'b', &corners.concat());
        }
        for (tag, time) in [(b's', &self.time_from), (b'e', &self.time_to)] {
            if let Some(time) = time {
                part(tag, time.as_bytes());
            }
        }
        part(b'r', &[self.sort as u8]);
        let digest = digest.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

fn check_bbox(bbox: &BoundingBox) -> Result<(), SearchError> {
    let BoundingBox {
        west,
        south,
        east,
        north,
    } = *bbox;
    let lon_ok = |v: f64| (-180.0..=180.0).contains(&v);
    let lat_ok = |v: f64| (-90.0..=90.0).contains(&v);
    if !(lon_ok(west) && lon_ok(east) && lat_ok(south) && lat_ok(north)) {
        return Err(SearchError::Invalid(format!(
            "bbox {west},{south},{east},{north} is outside WGS84 (longitude -180..180, latitude -90..90)"
        )));
    }
    if south > north {
        return Err(SearchError::Invalid(format!(
            "bbox south {south} is above north {north}"
        )));
    }
    Ok(())
}

/// The inclusive span of a temporal filter: from the first second of `from`
/// to the last second of `to`.
fn time_span(from: Option<&str>, to: Option<&str>) -> Result<Option<OpenRange<i64>>, SearchError> {
    let parse = |name: &str, text: Option<&str>, pick: fn((i64, i64)) -> i64| match text {
        Some(text) if text.len() > MAX_TIME_BYTES => Err(SearchError::Invalid(format!(
            "{name}: {} bytes, at most {MAX_TIME_BYTES}",
            text.len()
        ))),
        _ => match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => crate::date::bounds(text)
                .map(|span| Some(pick(span)))
                .map_err(|e| SearchError::Invalid(format!("{name}: {e}"))),
        },
    };
    let from = parse("time_from", from, |(first, _)| first)?;
    let to = parse("time_to", to, |(_, last)| last)?;
    match (from, to) {
        (None, None) => Ok(None),
        (Some(f), Some(t)) if f > t => Err(SearchError::Invalid(
            "time_from is after time_to".to_owned(),
        )),
        span => Ok(Some(span)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rejects_bad_fields_and_names_them() {
        let bad = |request: SearchRequest, needle: &str| {
            let error = request.plan().unwrap_err();
            assert!(
                matches!(error, SearchError::Invalid(_)) && error.to_string().contains(needle),
                "{error}"
            );
        };
        bad(
            SearchRequest {
                limit: MAX_LIMIT + 1,
                ..Default::default()
            },
            "limit",
        );
        bad(
            SearchRequest {
                access: vec![Access::Unspecified],
                ..Default::default()
            },
            "access",
        );
        let many = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
        bad(
            SearchRequest {
                origins: many(MAX_FILTER_VALUES + 1),
                ..Default::default()
            },
            "origins: 257 values, at most 256",
        );
        bad(
            SearchRequest {
                disciplines: many(MAX_FILTER_VALUES + 1),
                ..Default::default()
            },
            "disciplines",
        );
        let at_most = SearchRequest {
            licenses: many(MAX_FILTER_VALUES),
            ..Default::default()
        };
        assert!(at_most.plan().is_ok());
        // A value past its bound, which a live search would copy to every
        // peer and each peer keep in its audit.
        bad(
            SearchRequest {
                formats: vec!["text/csv".into(), "x".repeat(MAX_FILTER_VALUE_BYTES + 1)],
                ..Default::default()
            },
            "formats[1]: 257 bytes, at most 256",
        );
        let longest = SearchRequest {
            disciplines: vec!["x".repeat(MAX_FILTER_VALUE_BYTES)],
            ..Default::default()
        };
        assert!(longest.plan().is_ok());
        bad(
            SearchRequest {
                year: Some((Some(2021), Some(2020))),
                ..Default::default()
            },
            "year",
        );
        bad(
            SearchRequest {
                time_from: Some("yesterday".into()),
                ..Default::default()
            },
            "time_from",
        );
        // Padded past the bound, valid or blank within it: refused before
        // it is read, since a live search copies it to every peer.
        for padded in ["2020".to_owned() + &" ".repeat(300), " ".repeat(300)] {
            bad(
                SearchRequest {
                    time_to: Some(padded),
                    ..Default::default()
                },
                &format!("bytes, at most {MAX_TIME_BYTES}"),
            );
        }
        let padded_within = SearchRequest {
            time_from: Some(format!(" {} ", "2021-05-01T00:00:00.000000000+01:00")),
            ..Default::default()
        };
        assert!(padded_within.plan().is_ok());
        bad(
            SearchRequest {
                time_from: Some("2021".into()),
                time_to: Some("2020-12-31".into()),
                ..Default::default()
            },
            "after",
        );
        bad(
            SearchRequest {
                bbox: Some(BoundingBox {
                    west: 0.0,
                    south: 10.0,
                    east: 1.0,
                    north: 5.0,
                }),
                ..Default::default()
            },
            "south",
        );
        bad(
            SearchRequest {
                bbox: Some(BoundingBox {
                    west: f64::NAN,
                    south: 0.0,
                    east: 1.0,
                    north: 5.0,
                }),
                ..Default::default()
            },
            "WGS84",
        );
    }

    #[test]
    fn plan_normalises_access_and_spans_dates() {
        let plan = SearchRequest {
            access: vec![Access::Open, Access::Embargoed],
            time_from: Some("2020".into()),
            time_to: Some("2020-04-30".into()),
            ..Default::default()
        }
        .plan()
        .unwrap();
        assert_eq!(plan.access, ["open", "embargoed"]);
        assert_eq!(plan.time, Some((Some(1_577_836_800), Some(1_588_291_199))));
        let open = SearchRequest {
            time_to: Some("2020".into()),
            ..Default::default()
        }
        .plan()
        .unwrap();
        assert_eq!(open.time, Some((None, Some(1_609_459_199))));
    }

    #[test]
    fn a_cursor_is_refused_by_another_request() {
        let request = SearchRequest {
            text: "ice".into(),
            ..Default::default()
        };
        let token = Cursor {
            snapshot: None,
            fingerprint: request.fingerprint(),
            sort: Sort::Relevance,
            primary: 7,
            origin: "a".into(),
            id: "1".into(),
            seen: 0,
        }
        .encode();
        let same = SearchRequest {
            after: Some(token.clone()),
            limit: 5,
            ..request.clone()
        };
        assert!(same.plan().unwrap().after.is_some());
        let other = SearchRequest {
            text: "snow".into(),
            after: Some(token.clone()),
            ..request.clone()
        };
        assert!(matches!(other.plan(), Err(SearchError::Cursor(_))));
        let resorted = SearchRequest {
            sort: Sort::Size,
            after: Some(token),
            ..request
        };
        assert!(matches!(resorted.plan(), Err(SearchError::Cursor(_))));
    }

    #[test]
    fn every_part_of_the_match_set_and_order_is_in_the_fingerprint() {
        let base = SearchRequest {
            text: "ice".into(),
            disciplines: vec!["earth".into()],
            ..Default::default()
        };
        let changed = [
            SearchRequest {
                text: "ic".into(),
                ..base.clone()
            },
            SearchRequest {
                scope: Scope::Local { node: "a".into() },
                ..base.clone()
            },
            // The same value under another filter, or split differently.
            SearchRequest {
                disciplines: vec![],
                origins: vec!["earth".into()],
                ..base.clone()
            },
            SearchRequest {
                disciplines: vec!["ear".into(), "th".into()],
                ..base.clone()
            },
            SearchRequest {
                licenses: vec!["cc-by".into()],
                ..base.clone()
            },
            SearchRequest {
                formats: vec!["csv".into()],
                ..base.clone()
            },
            SearchRequest {
                access: vec![Access::Open],
                ..base.clone()
            },
            SearchRequest {
                year: Some((Some(2000), None)),
                ..base.clone()
            },
            SearchRequest {
                year: Some((None, Some(2000))),
                ..base.clone()
            },
            SearchRequest {
                bbox: Some(BoundingBox {
                    west: -10.0,
                    south: -10.0,
                    east: 10.0,
                    north: 10.0,
                }),
                ..base.clone()
            },
            SearchRequest {
                time_from: Some("2020".into()),
                ..base.clone()
            },
            SearchRequest {
                time_to: Some("2020".into()),
                ..base.clone()
            },
            SearchRequest {
                sort: Sort::Updated,
                ..base.clone()
            },
        ];
        let mut seen = std::collections::HashSet::from([base.fingerprint()]);
        for request in &changed {
            assert!(seen.insert(request.fingerprint()), "{request:?}");
        }
        // What does not decide the match set or the order is not in it.
        let paged = SearchRequest {
            limit: 3,
            facets: true,
            highlight: true,
            ..base.clone()
        };
        assert_eq!(paged.fingerprint(), base.fingerprint());
    }
}
