//! The dataset record (DESIGN.md §2): its JSON Lines form, for import and
//! export, and the rules every record meets, whether it was read from a file
//! or received from a peer.
//!
//! The required properties are the mandatory set of the DataCite Metadata
//! Schema 4 (identifier, creator, title, publisher, publication year,
//! resource type). A tombstone (`deleted`) needs only `origin`, `id` and
//! `version`.
//!
//! A valid record is also *canonical*: text trimmed, dates in the text form
//! of [`crate::date`], DOIs bare and lowercase (`10.1234/abc`), ORCID iDs
//! bare (`0000-0002-1825-0097`), licenses spelled as the SPDX list spells
//! them. [`parse_json_line`] rewrites its input into that form and
//! [`validate`] refuses a record that is not in it. So a peer's record is
//! kept exactly as its origin wrote it, equal records are equal field by
//! field (the index can group one DOI held at several nodes), and
//! [`to_json`] followed by [`parse_json_line`] gives back the same record.

use crate::quote::short_text;
use serde::Deserialize;
use serde_json::{Map, Value};
use unicode_normalization::char::canonical_combining_class;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::date;
use crate::ids::{NodeId, RecordId};
use crate::proto::{
    Access, AlternateIdentifier, BoundingBox, Creator, DatasetRecord, FundingReference, GeoPoint,
    GeoPolygon, RelatedIdentifier, Rights, Subject, TemporalCoverage, TypedDate, Visibility,
};

/// Longest JSON line accepted, checked before any parsing.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Longest `id`, in bytes.
pub const MAX_ID_BYTES: usize = crate::ids::MAX_RECORD_ID_BYTES;
/// Longest `title`, in characters.
pub const MAX_TITLE_CHARS: usize = 1000;
/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Most creators a record may list.
pub const MAX_CREATORS: usize = 100;
/// Longest name-like text, in characters: a creator's name or affiliation,
/// `publisher`, `resource_type`, `project`.
pub const MAX_NAME_CHARS: usize = 500;
/// Most keywords a record may list.
pub const MAX_KEYWORDS: usize = 200;
/// Most disciplines a record may list.
pub const MAX_DISCIPLINES: usize = 50;
/// Most formats a record may list.
pub const MAX_FORMATS: usize = 50;
/// Longest keyword, discipline or format, in characters.
pub const MAX_TERM_CHARS: usize = 200;
/// Most groups a record may be shown to.
pub const MAX_GROUPS: usize = 64;
/// Longest group name, in bytes.
pub const MAX_GROUP_BYTES: usize = 64;
/// Most bounding boxes a record may carry.
pub const MAX_BOXES: usize = 100;
/// Longest DOI, in bytes.
pub const MAX_DOI_BYTES: usize = 512;
/// Longest `landing_url`, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest `license`, in bytes.
pub const MAX_LICENSE_BYTES: usize = 128;
/// Most `subjects` (terms with a scheme) a record may list.
pub const MAX_SUBJECTS: usize = 200;
/// Longest subject value, in characters.
pub const MAX_SUBJECT_CHARS: usize = 500;
/// Most `related_identifiers` a record may list.
pub const MAX_RELATED_IDENTIFIERS: usize = 500;
/// Most `funding_references` a record may list.
pub const MAX_FUNDING_REFERENCES: usize = 100;
/// Most `geo_points` a record may carry.
pub const MAX_GEO_POINTS: usize = 100;
/// Most `geo_polygons` a record may carry.
pub const MAX_GEO_POLYGONS: usize = 20;
/// Most points of one polygon, the closing point included.
pub const MAX_POLYGON_POINTS: usize = 1000;
/// Fewest points of one polygon, the closing point included (a triangle).
pub const MIN_POLYGON_POINTS: usize = 4;
/// Most `geo_places` a record may name.
pub const MAX_GEO_PLACES: usize = 100;
/// Most typed `dates` a record may list.
pub const MAX_DATES: usize = 50;
/// Most `rights` statements a record may list.
pub const MAX_RIGHTS: usize = 20;
/// Longest rights statement, in characters.
pub const MAX_RIGHTS_CHARS: usize = 2000;
/// Most `alternate_identifiers` a record may list.
pub const MAX_ALTERNATE_IDENTIFIERS: usize = 50;
/// Longest identifier of another resource, a funder or an award, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 2048;
/// Longest URI (scheme, value, rights, award URIs), in bytes.
pub const MAX_URI_BYTES: usize = 2048;
/// Longest `dataset_version`, in characters.
pub const MAX_VERSION_CHARS: usize = 100;
/// Longest `language` tag, in bytes.
pub const MAX_LANGUAGE_BYTES: usize = 35;
/// Earliest `publication_year` accepted.
pub const MIN_PUBLICATION_YEAR: u32 = 1000;
/// Latest `publication_year` accepted.
pub const MAX_PUBLICATION_YEAR: u32 = 9999;

/// DataCite's `relationType` values (kernel 4.6).
pub const RELATION_TYPES: &[&str] = &[
    "IsCitedBy",
    "Cites",
    "IsSupplementTo",
    "IsSupplementedBy",
    "IsContinuedBy",
    "Continues",
    "IsNewVersionOf",
    "IsPreviousVersionOf",
    "IsPartOf",
    "HasPart",
    "IsPublishedIn",
    "IsReferencedBy",
    "References",
    "IsDocumentedBy",
    "Documents",
    "IsCompiledBy",
    "Compiles",
    "IsVariantFormOf",
    "IsOriginalFormOf",
    "IsIdenticalTo",
    "HasMetadata",
    "IsMetadataFor",
    "Reviews",
    "IsReviewedBy",
    "IsDerivedFrom",
    "IsSourceOf",
    "Describes",
    "IsDescribedBy",
    "HasVersion",
    "IsVersionOf",
    "Requires",
    "IsRequiredBy",
    "Obsoletes",
    "IsObsoletedBy",
    "Collects",
    "IsCollectedBy",
    "HasTranslation",
    "IsTranslationOf",
];
/// DataCite's `relatedIdentifierType` values (kernel 4.6).
pub const RELATED_IDENTIFIER_TYPES: &[&str] = &[
    "ARK", "arXiv", "bibcode", "CSTR", "DOI", "EAN13", "EISSN", "Handle", "IGSN", "ISBN", "ISSN",
    "ISTC", "LISSN", "LSID", "PMID", "PURL", "RRID", "UPC", "URL", "URN", "w3id",
];
/// DataCite's `dateType` values (kernel 4.6).
pub const DATE_TYPES: &[&str] = &[
    "Accepted",
    "Available",
    "Collected",
    "Copyrighted",
    "Coverage",
    "Created",
    "Issued",
    "Other",
    "Submitted",
    "Updated",
    "Valid",
    "Withdrawn",
];
/// DataCite's `funderIdentifierType` values (kernel 4.6).
pub const FUNDER_IDENTIFIER_TYPES: &[&str] =
    &["ISNI", "GRID", "ROR", "Crossref Funder ID", "Other"];
/// DataCite's `resourceTypeGeneral` values (kernel 4.6).
pub const RESOURCE_TYPES: &[&str] = &[
    "Audiovisual",
    "Award",
    "Book",
    "BookChapter",
    "Collection",
    "ComputationalNotebook",
    "ConferencePaper",
    "ConferenceProceeding",
    "DataPaper",
    "Dataset",
    "Dissertation",
    "Event",
    "Image",
    "Instrument",
    "InteractiveResource",
    "Journal",
    "JournalArticle",
    "Model",
    "OutputManagementPlan",
    "PeerReview",
    "PhysicalObject",
    "Preprint",
    "Project",
    "Report",
    "Service",
    "Software",
    "Sound",
    "Standard",
    "StudyRegistration",
    "Text",
    "Workflow",
    "Other",
];
/// Subject scheme of the model's own disciplines, as DataCite export writes them.
pub const DISCIPLINE_SCHEME: &str = "meridian discipline";
/// Alternate identifier type of a record's `ORIGIN/ID`, as DataCite export writes it.
pub const MERIDIAN_ID_TYPE: &str = "meridian";

/// The text names of [`Access`], as the JSON form and the CLI write them.
pub const ACCESS_NAMES: [&str; 4] = ["open", "registered", "embargoed", "restricted"];
/// The text names of [`Visibility`], as the JSON form and the CLI write them.
pub const VISIBILITY_NAMES: [&str; 4] = ["public", "federation", "groups", "private"];

/// Why a record was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RecordError {
    /// Path of the offending field, e.g. `title`, `creators[1].orcid`,
    /// `spatial[0].south`; `json` when the line is not a JSON object.
    pub field: String,
    /// What is wrong, written for the person who fixes the input.
    pub reason: String,
}

impl RecordError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The text name of an [`Access`] value; `"unspecified"` for 0 or an unknown value.
pub fn access_name(access: i32) -> &'static str {
    match Access::try_from(access) {
        Ok(Access::Open) => "open",
        Ok(Access::Registered) => "registered",
        Ok(Access::Embargoed) => "embargoed",
        Ok(Access::Restricted) => "restricted",
        Ok(Access::Unspecified) | Err(_) => "unspecified",
    }
}

/// Reads one of [`ACCESS_NAMES`] (or its proto form `ACCESS_OPEN`), ignoring
/// ASCII case and surrounding space.
pub fn parse_access(name: &str) -> Option<Access> {
    let name = name.trim().to_ascii_lowercase();
    match name.strip_prefix("access_").unwrap_or(&name) {
        "open" => Some(Access::Open),
        "registered" => Some(Access::Registered),
        "embargoed" => Some(Access::Embargoed),
        "restricted" => Some(Access::Restricted),
        _ => None,
    }
}

/// The text name of a [`Visibility`] value; `"unspecified"` for 0 or an unknown value.
pub fn visibility_name(visibility: i32) -> &'static str {
    match Visibility::try_from(visibility) {
        Ok(Visibility::Public) => "public",
        Ok(Visibility::Federation) => "federation",
        Ok(Visibility::Groups) => "groups",
        Ok(Visibility::Private) => "private",
        Ok(Visibility::Unspecified) | Err(_) => "unspecified",
    }
}

/// Reads one of [`VISIBILITY_NAMES`], ignoring ASCII case and surrounding space.
pub fn parse_visibility(name: &str) -> Option<Visibility> {
    match name.trim().to_ascii_lowercase().as_str() {
        "public" => Some(Visibility::Public),
        "federation" => Some(Visibility::Federation),
        "groups" => Some(Visibility::Groups),
        "private" => Some(Visibility::Private),
        _ => None,
    }
}

/// The canonical form of a DOI: bare (`10.1234/abc`, without
/// `https://doi.org/` or `doi:`), trimmed, ASCII-lowercase (DOI names are
/// case-insensitive). The result is not checked; [`validate`] does that.
pub fn canonical_doi(text: &str) -> String {
    const PREFIXES: [&str; 6] = [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi.org/",
        "doi:",
    ];
    let text = text.trim();
    let bare = PREFIXES
        .iter()
        .find_map(|prefix| strip_prefix_ignore_case(text, prefix))
        .unwrap_or(text);
    bare.trim().to_ascii_lowercase()
}

/// The spelling `list` gives `value` (matched ignoring ASCII case and
/// surrounding space), e.g. `IsCitedBy` for `iscitedby`.
pub fn canonical_term(value: &str, list: &[&'static str]) -> Option<&'static str> {
    let value = value.trim();
    list.iter().copied().find(|t| t.eq_ignore_ascii_case(value))
}

/// The access right an `info:eu-repo/semantics/…Access` rights URI states.
pub fn access_of_rights_uri(uri: &str) -> Option<Access> {
    match uri.trim().strip_prefix("info:eu-repo/semantics/") {
        Some("openAccess") => Some(Access::Open),
        Some("embargoedAccess") => Some(Access::Embargoed),
        Some("restrictedAccess") | Some("closedAccess") => Some(Access::Restricted),
        _ => None,
    }
}

/// The license a rights statement names, as `license` keeps it: from its
/// `rightsIdentifier`, an SPDX or Creative Commons URI, or its text, the
/// first that is an SPDX id or a `LicenseRef-…`.
pub fn rights_license(rights: &Rights) -> Option<String> {
    let uri = rights.uri.trim();
    let candidates = [
        rights.identifier.trim().to_owned(),
        uri.strip_prefix("https://spdx.org/licenses/")
            .or_else(|| uri.strip_prefix("http://spdx.org/licenses/"))
            .map(|id| id.trim_end_matches(".html").to_owned())
            .unwrap_or_default(),
        creative_commons(uri).unwrap_or_default(),
        rights.statement.trim().to_owned(),
    ];
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| canonical_license(c))
        .find(|license| {
            if license.starts_with(LICENSE_REF) {
                check_license("license", license).is_ok()
            } else {
                spdx::license_id(license).is_some()
            }
        })
}

/// The SPDX id of a Creative Commons license URI. A ported license
/// (`…/licenses/by/3.0/de/`) is its own license, `CC-BY-3.0-DE`, not the
/// unported one; a port SPDX does not list is no SPDX license (the URI is
/// kept as a rights statement). `deed.xx` and `legalcode` name a page of
/// the license, not a port.
fn creative_commons(uri: &str) -> Option<String> {
    let rest = uri
        .split_once("creativecommons.org/")
        .map(|(_, rest)| rest.trim_end_matches('/'))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["publicdomain", "zero", version, ..] => Some(format!("CC0-{version}")),
        ["licenses", kind, version, port, ..]
            if (2..=3).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            Some(format!(
                "CC-{}-{version}-{}",
                kind.to_ascii_uppercase(),
                port.to_ascii_uppercase()
            ))
        }
        ["licenses", kind, version, ..] => {
            Some(format!("CC-{}-{version}", kind.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// The rights statement that stands for `license` alone, as DataCite
/// export writes it. A statement of exactly this form is read back as the
/// license, not kept in `rights`.
pub fn license_rights(license: &str) -> Rights {
    if license.starts_with(LICENSE_REF) {
        return Rights {
            statement: license.to_owned(),
            identifier: license.to_owned(),
            ..Default::default()
        };
    }
    Rights {
        statement: license.to_owned(),
        uri: format!("https://spdx.org/licenses/{license}"),
        identifier: license.to_owned(),
        identifier_scheme: "SPDX".to_owned(),
        scheme_uri: "https://spdx.org/licenses/".to_owned(),
    }
}

/// Whether a subject is a plain keyword: a value with no scheme, URI or code.
pub fn is_keyword(subject: &Subject) -> bool {
    subject.scheme.is_empty()
        && subject.scheme_uri.is_empty()
        && subject.value_uri.is_empty()
        && subject.classification_code.is_empty()
}

/// The discipline a Fields of Science (FOS) subject names (`FOS: ` dropped).
pub fn subject_discipline(subject: &Subject) -> Option<String> {
    let scheme = subject.scheme.trim().to_ascii_lowercase();
    if scheme != "fos" && !scheme.contains("fields of science") {
        return None;
    }
    let value = subject.value.trim();
    let value = value.strip_prefix("FOS: ").unwrap_or(value).trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Adds to `disciplines` the ones its FOS subjects name and it lacks.
pub fn add_subject_disciplines(record: &mut DatasetRecord) {
    for subject in &record.subjects {
        if let Some(discipline) = subject_discipline(subject) {
            if !record.disciplines.contains(&discipline) {
                record.disciplines.push(discipline);
            }
        }
    }
}

/// Every area a record covers as boxes: its `spatial` boxes, its points
/// (as boxes of no size) and the bounding box of each polygon. The spatial
/// filter of search matches these.
pub fn record_boxes(record: &DatasetRecord) -> Vec<BoundingBox> {
    let points = record.geo_points.iter().map(|p| BoundingBox {
        west: p.longitude,
        south: p.latitude,
        east: p.longitude,
        north: p.latitude,
    });
    let polygons = record
        .geo_polygons
        .iter()
        .filter_map(|polygon| polygon_bounds(&polygon.points));
    record
        .spatial
        .iter()
        .cloned()
        .chain(points)
        .chain(polygons)
        .collect()
}

/// The smallest box holding every point of a polygon, crossing the
/// antimeridian (west > east) when that is smaller: the longitudes are
/// covered by the circle less its widest gap between two of them.
pub fn polygon_bounds(points: &[GeoPoint]) -> Option<BoundingBox> {
    let first = points.first()?;
    let (mut south, mut north) = (first.latitude, first.latitude);
    let mut longitudes: Vec<f64> = Vec::with_capacity(points.len());
    for point in points {
        south = south.min(point.latitude);
        north = north.max(point.latitude);
        longitudes.push(point.longitude);
    }
    longitudes.sort_by(f64::total_cmp);
    longitudes.dedup();
    let (min, max) = (longitudes[0], longitudes[longitudes.len() - 1]);
    // The gap across the antimeridian, from the easternmost round to the westernmost.
    let (mut gap, mut west, mut east) = (min + 360.0 - max, min, max);
    for pair in longitudes.windows(2) {
        if pair[1] - pair[0] > gap {
            gap = pair[1] - pair[0];
            west = pair[1];
            east = pair[0];
        }
    }
    Some(BoundingBox {
        west,
        south,
        east,
        north,
    })
}

/// Parses one line of JSON Lines into a validated, canonical record.
///
/// Field names are those of the proto message. `origin`, `version` and
/// `deleted` are read too, so the node's own export can be imported again;
/// what to make of them is the node's decision. An absent `visibility` stays
/// unspecified and an absent `updated_at` stays empty: the node fills both.
/// `null` counts as absent.
pub fn parse_json_line(line: &str) -> Result<DatasetRecord, RecordError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(RecordError::new(
            "json",
            format!(
                "line is {} bytes long; at most {MAX_LINE_BYTES} are allowed",
                line.len()
            ),
        ));
    }
    // The common case parses without tracking paths; only a line that
    // fails is parsed again, to name the field.
    let input = match serde_json::from_str::<Object<RecordInput>>(line) {
        Ok(Object(input)) => input,
        Err(_) => {
            let mut deserializer = serde_json::Deserializer::from_str(line);
            let Object(input): Object<RecordInput> =
                serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
            deserializer.end().map_err(|error| syntax_error(&error))?;
            input
        }
    };
    let record = input.into_record()?;
    validate(&record)?;
    Ok(record)
}

/// The rules a record this node writes meets beyond [`validate`]'s: its
/// `id` and `doi` hold no Unicode format character (category Cf: soft
/// hyphen, zero-width space, joiners, word joiner, bidirectional
/// controls, byte order mark, tags). Such a character is invisible, so
/// `A-1` and `A-\u{200B}1` would be two records that read alike, and a
/// copied DOI would not be found as the same DOI. One exception, in ids
/// only: a joiner where a script spells with it ([`joiner_spells`]). A
/// delete names a record already held, so its id is not checked. A peer's
/// record is held only to [`validate`]: an origin may have signed such an
/// id before the rule, and refusing its entry would stop its log there for
/// good (docs/decisions/record-ids.md).
pub fn check_new(record: &DatasetRecord) -> Result<(), RecordError> {
    let id = (!record.deleted).then_some(("id", &record.id));
    for (field, value) in id.into_iter().chain([("doi", &record.doi)]) {
        if value.is_ascii() {
            continue;
        }
        for (at, c) in value.char_indices() {
            if c.general_category() == GeneralCategory::Format
                && !(field == "id" && joiner_spells(value, at, c))
            {
                return Err(RecordError::new(
                    field,
                    format!(
                        "`{}` holds the invisible format character U+{:04X} at byte {at}; \
                         remove it (two values that read alike would differ)",
                        value.escape_debug(),
                        u32::from(c)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `c`, at byte `at` of `value`, is a joiner that a script spells
/// with: the rule RFC 5892 (appendix A, CONTEXTJ) sets for the joiners in
/// domain names. A zero-width joiner or non-joiner right after a virama,
/// before a letter (the Indic scripts: `क्` + U+200D + `ष`); and a
/// non-joiner between a letter that joins on its left and one that joins
/// on its right, marks that do not join aside (Persian: `می` + U+200C +
/// `خواهم`).
fn joiner_spells(value: &str, at: usize, c: char) -> bool {
    use unicode_joining_type::{get_joining_type, JoiningType as Joins};
    if !matches!(c, '\u{200C}' | '\u{200D}') {
        return false;
    }
    let (before, after) = (&value[..at], &value[at + c.len_utf8()..]);
    let after_virama = before
        .chars()
        .next_back()
        .is_some_and(|b| canonical_combining_class(b) == VIRAMA)
        && after.chars().next().is_some_and(char::is_alphabetic);
    let joins = |text: &mut dyn Iterator<Item = char>, sides: [Joins; 2]| {
        text.map(get_joining_type)
            .find(|&joins| joins != Joins::Transparent)
            .is_some_and(|joins| sides.contains(&joins))
    };
    after_virama
        || c == '\u{200C}'
            && joins(
                &mut before.chars().rev(),
                [Joins::LeftJoining, Joins::DualJoining],
            )
            && joins(
                &mut after.chars(),
                [Joins::RightJoining, Joins::DualJoining],
            )
}

/// The canonical combining class of a virama.
const VIRAMA: u8 = 9;

/// Checks every rule of a record; the first broken one is reported.
///
/// Usable on records from any source: a record that [`parse_json_line`]
/// would have rewritten (untrimmed text, a DOI URL, a date with an offset)
/// is refused, since it is not canonical.
pub fn validate(record: &DatasetRecord) -> Result<(), RecordError> {
    if !record.origin.is_empty() {
        NodeId::parse(&record.origin).map_err(|e| RecordError::new("origin", e.to_string()))?;
    }
    if record.id.is_empty() {
        return Err(RecordError::new("id", "is required"));
    }
    RecordId::parse(&record.id).map_err(|e| RecordError::new("id", e.to_string()))?;
    if record.deleted {
        if record.origin.is_empty() {
            return Err(RecordError::new(
                "origin",
                "is required on a tombstone (`deleted`)",
            ));
        }
        if record.version == 0 {
            return Err(RecordError::new(
                "version",
                "is required on a tombstone (`deleted`): the version it withdraws the record at",
            ));
        }
    }
    // A tombstone needs nothing more, but what it does carry must still be well-formed.
    let required = !record.deleted;

    check_text(
        "title",
        &record.title,
        Limit::Chars(MAX_TITLE_CHARS),
        required,
        Lines::One,
    )?;
    check_text(
        "description",
        &record.description,
        Limit::Bytes(MAX_DESCRIPTION_BYTES),
        false,
        Lines::Many,
    )?;
    check_creators(&record.creators, required)?;
    check_text(
        "publisher",
        &record.publisher,
        Limit::Chars(MAX_NAME_CHARS),
        required,
        Lines::One,
    )?;
    check_publication_year(record.publication_year, required)?;
    check_text(
        "resource_type",
        &record.resource_type,
        Limit::Chars(MAX_NAME_CHARS),
        required,
        Lines::One,
    )?;
    check_terms("keywords", &record.keywords, MAX_KEYWORDS)?;
    check_terms("disciplines", &record.disciplines, MAX_DISCIPLINES)?;
    check_doi("doi", &record.doi)?;
    check_url("landing_url", &record.landing_url)?;
    check_license("license", &record.license)?;
    check_access(record, required)?;
    check_visibility(record, required)?;
    check_spatial(&record.spatial)?;
    check_temporal(record.temporal.as_ref())?;
    check_terms("formats", &record.formats, MAX_FORMATS)?;
    check_text(
        "project",
        &record.project,
        Limit::Chars(MAX_NAME_CHARS),
        false,
        Lines::One,
    )?;
    check_date("updated_at", &record.updated_at)?;
    check_subjects(record)?;
    check_related_identifiers(&record.related_identifiers)?;
    check_funding_references(&record.funding_references)?;
    check_geo(record)?;
    check_dates(record)?;
    check_rights(record)?;
    check_alternate_identifiers(record)?;
    check_text(
        "dataset_version",
        &record.dataset_version,
        Limit::Chars(MAX_VERSION_CHARS),
        false,
        Lines::One,
    )?;
    check_language("language", &record.language)?;
    Ok(())
}

/// The JSON export form: proto field names, enums as lowercase text, empty
/// and default fields left out; `origin` and `version` included when set,
/// `deleted` when true. [`parse_json_line`] reads it back to the same record.
pub fn to_json(record: &DatasetRecord) -> Value {
    let mut out = Map::new();
    put_text(&mut out, "origin", &record.origin);
    put_text(&mut out, "id", &record.id);
    put_number(&mut out, "version", record.version);
    put_text(&mut out, "title", &record.title);
    put_text(&mut out, "description", &record.description);
    if !record.creators.is_empty() {
        let creators = record.creators.iter().map(creator_json).collect();
        out.insert("creators".into(), Value::Array(creators));
    }
    put_text(&mut out, "publisher", &record.publisher);
    put_number(
        &mut out,
        "publication_year",
        u64::from(record.publication_year),
    );
    put_text(&mut out, "resource_type", &record.resource_type);
    put_list(&mut out, "keywords", &record.keywords);
    put_list(&mut out, "disciplines", &record.disciplines);
    put_text(&mut out, "doi", &record.doi);
    put_text(&mut out, "landing_url", &record.landing_url);
    put_text(&mut out, "license", &record.license);
    if record.access != Access::Unspecified as i32 {
        put_text(&mut out, "access", access_name(record.access));
    }
    put_text(&mut out, "embargo_until", &record.embargo_until);
    if record.visibility != Visibility::Unspecified as i32 {
        put_text(&mut out, "visibility", visibility_name(record.visibility));
    }
    put_list(&mut out, "groups", &record.groups);
    if !record.spatial.is_empty() {
        let boxes = record.spatial.iter().map(box_json).collect();
        out.insert("spatial".into(), Value::Array(boxes));
    }
    if let Some(temporal) = &record.temporal {
        let mut coverage = Map::new();
        put_text(&mut coverage, "start", &temporal.start);
        put_text(&mut coverage, "end", &temporal.end);
        out.insert("temporal".into(), Value::Object(coverage));
    }
    put_number(&mut out, "size_bytes", record.size_bytes);
    put_number(&mut out, "file_count", record.file_count);
    put_list(&mut out, "formats", &record.formats);
    put_text(&mut out, "project", &record.project);
    put_text(&mut out, "updated_at", &record.updated_at);
    put_objects(&mut out, "subjects", &record.subjects, |s| {
        object(&[
            ("value", &s.value),
            ("scheme", &s.scheme),
            ("scheme_uri", &s.scheme_uri),
            ("value_uri", &s.value_uri),
            ("classification_code", &s.classification_code),
        ])
    });
    put_objects(
        &mut out,
        "related_identifiers",
        &record.related_identifiers,
        |r| {
            object(&[
                ("identifier", &r.identifier),
                ("identifier_type", &r.identifier_type),
                ("relation_type", &r.relation_type),
                ("resource_type_general", &r.resource_type_general),
            ])
        },
    );
    put_objects(
        &mut out,
        "funding_references",
        &record.funding_references,
        |f| {
            object(&[
                ("funder_name", &f.funder_name),
                ("funder_identifier", &f.funder_identifier),
                ("funder_identifier_type", &f.funder_identifier_type),
                ("award_number", &f.award_number),
                ("award_uri", &f.award_uri),
                ("award_title", &f.award_title),
            ])
        },
    );
    put_objects(&mut out, "geo_points", &record.geo_points, point_json);
    put_objects(&mut out, "geo_polygons", &record.geo_polygons, |p| {
        let points = p.points.iter().map(point_json).collect();
        let mut polygon = Map::new();
        polygon.insert("points".into(), Value::Array(points));
        Value::Object(polygon)
    });
    put_list(&mut out, "geo_places", &record.geo_places);
    put_objects(&mut out, "dates", &record.dates, |d| {
        object(&[
            ("date", &d.date),
            ("date_type", &d.date_type),
            ("information", &d.information),
        ])
    });
    put_objects(&mut out, "rights", &record.rights, |r| {
        object(&[
            ("statement", &r.statement),
            ("uri", &r.uri),
            ("identifier", &r.identifier),
            ("identifier_scheme", &r.identifier_scheme),
            ("scheme_uri", &r.scheme_uri),
        ])
    });
    put_objects(
        &mut out,
        "alternate_identifiers",
        &record.alternate_identifiers,
        |a| {
            object(&[
                ("identifier", &a.identifier),
                ("identifier_type", &a.identifier_type),
            ])
        },
    );
    put_text(&mut out, "dataset_version", &record.dataset_version);
    put_text(&mut out, "language", &record.language);
    if record.deleted {
        out.insert("deleted".into(), Value::Bool(true));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// The JSON input form.

/// One JSON line as written. Every field is optional here so that a missing
/// required field is reported by [`validate`] with its name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordInput {
    origin: Option<String>,
    id: Option<String>,
    version: Option<u64>,
    title: Option<String>,
    description: Option<String>,
    creators: Option<Vec<Object<CreatorInput>>>,
    publisher: Option<String>,
    publication_year: Option<u32>,
    resource_type: Option<String>,
    keywords: Option<Vec<String>>,
    disciplines: Option<Vec<String>>,
    doi: Option<String>,
    landing_url: Option<String>,
    license: Option<String>,
    access: Option<String>,
    embargo_until: Option<String>,
    visibility: Option<String>,
    groups: Option<Vec<String>>,
    spatial: Option<Vec<Object<BoxInput>>>,
    temporal: Option<Object<TemporalInput>>,
    size_bytes: Option<u64>,
    file_count: Option<u64>,
    formats: Option<Vec<String>>,
    project: Option<String>,
    updated_at: Option<String>,
    deleted: Option<bool>,
    subjects: Option<Vec<Object<SubjectInput>>>,
    related_identifiers: Option<Vec<Object<RelatedInput>>>,
    funding_references: Option<Vec<Object<FundingInput>>>,
    geo_points: Option<Vec<Object<PointInput>>>,
    geo_polygons: Option<Vec<Object<PolygonInput>>>,
    geo_places: Option<Vec<String>>,
    dates: Option<Vec<Object<DateInput>>>,
    rights: Option<Vec<Object<RightsInput>>>,
    alternate_identifiers: Option<Vec<Object<AlternateInput>>>,
    dataset_version: Option<String>,
    language: Option<String>,
}

/// A JSON object and nothing else. A derived struct also takes an array of
/// its fields in order, which would let `["node-a", "X-1"]` pass for a record.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatorInput {
    name: Option<String>,
    affiliation: Option<String>,
    orcid: Option<String>,
}

/// All four sides are required: a missing one must not silently become 0°.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxInput {
    west: f64,
    south: f64,
    east: f64,
    north: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemporalInput {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectInput {
    value: Option<String>,
    scheme: Option<String>,
    scheme_uri: Option<String>,
    value_uri: Option<String>,
    classification_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedInput {
    identifier: Option<String>,
    identifier_type: Option<String>,
    relation_type: Option<String>,
    resource_type_general: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundingInput {
    funder_name: Option<String>,
    funder_identifier: Option<String>,
    funder_identifier_type: Option<String>,
    award_number: Option<String>,
    award_uri: Option<String>,
    award_title: Option<String>,
}

/// Both coordinates are required: a missing one must not silently become 0°.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointInput {
    longitude: f64,
    latitude: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolygonInput {
    points: Vec<Object<PointInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateInput {
    date: Option<String>,
    date_type: Option<String>,
    information: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RightsInput {
    statement: Option<String>,
    uri: Option<String>,
    identifier: Option<String>,
    identifier_scheme: Option<String>,
    scheme_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlternateInput {
    identifier: Option<String>,
    identifier_type: Option<String>,
}

/// A vocabulary term in the list's spelling; unknown terms are left as
/// given for [`validate`] to name.
fn vocabulary(value: Option<String>, list: &[&'static str]) -> String {
    let value = text(value);
    canonical_term(&value, list).map_or(value, str::to_owned)
}

/// A typed date or range `start/end` with each bound in canonical form.
fn canonical_date_or_range(field: &str, value: String) -> Result<String, RecordError> {
    match value.split_once('/') {
        None => canonical_date(field, value),
        Some((start, end)) => Ok(format!(
            "{}/{}",
            canonical_date(field, start.trim().to_owned())?,
            canonical_date(field, end.trim().to_owned())?
        )),
    }
}

impl RecordInput {
    /// The record in canonical form; not yet validated.
    fn into_record(self) -> Result<DatasetRecord, RecordError> {
        let access = match text(self.access).as_str() {
            "" => Access::Unspecified,
            name => parse_access(name).ok_or_else(|| {
                RecordError::new(
                    "access",
                    format!("`{name}` is not one of {}", ACCESS_NAMES.join(", ")),
                )
            })?,
        };
        let visibility = match text(self.visibility).as_str() {
            "" => Visibility::Unspecified,
            name => parse_visibility(name).ok_or_else(|| {
                RecordError::new(
                    "visibility",
                    format!("`{name}` is not one of {}", VISIBILITY_NAMES.join(", ")),
                )
            })?,
        };
        let temporal = match self.temporal {
            None => None,
            Some(Object(input)) => {
                let start = canonical_date("temporal.start", text(input.start))?;
                let end = canonical_date("temporal.end", text(input.end))?;
                // Both bounds open is the same as no coverage given.
                (!start.is_empty() || !end.is_empty()).then_some(TemporalCoverage { start, end })
            }
        };
        let creators = self
            .creators
            .unwrap_or_default()
            .into_iter()
            .map(|Object(creator)| Creator {
                name: text(creator.name),
                affiliation: text(creator.affiliation),
                orcid: canonical_orcid(&text(creator.orcid)),
            })
            .collect();
        let spatial = self
            .spatial
            .unwrap_or_default()
            .into_iter()
            .map(|Object(b)| BoundingBox {
                west: b.west,
                south: b.south,
                east: b.east,
                north: b.north,
            })
            .collect();
        let subjects = self
            .subjects
            .unwrap_or_default()
            .into_iter()
            .map(|Object(s)| Subject {
                value: text(s.value),
                scheme: text(s.scheme),
                scheme_uri: text(s.scheme_uri),
                value_uri: text(s.value_uri),
                classification_code: text(s.classification_code),
            })
            .collect();
        let related_identifiers = self
            .related_identifiers
            .unwrap_or_default()
            .into_iter()
            .map(|Object(r)| RelatedIdentifier {
                identifier: text(r.identifier),
                identifier_type: vocabulary(r.identifier_type, RELATED_IDENTIFIER_TYPES),
                relation_type: vocabulary(r.relation_type, RELATION_TYPES),
                resource_type_general: vocabulary(r.resource_type_general, RESOURCE_TYPES),
            })
            .collect();
        let funding_references = self
            .funding_references
            .unwrap_or_default()
            .into_iter()
            .map(|Object(f)| FundingReference {
                funder_name: text(f.funder_name),
                funder_identifier: text(f.funder_identifier),
                funder_identifier_type: vocabulary(
                    f.funder_identifier_type,
                    FUNDER_IDENTIFIER_TYPES,
                ),
                award_number: text(f.award_number),
                award_uri: text(f.award_uri),
                award_title: text(f.award_title),
            })
            .collect();
        let point = |Object(p): Object<PointInput>| GeoPoint {
            longitude: p.longitude,
            latitude: p.latitude,
        };
        let geo_points = self
            .geo_points
            .unwrap_or_default()
            .into_iter()
            .map(point)
            .collect();
        let geo_polygons = self
            .geo_polygons
            .unwrap_or_default()
            .into_iter()
            .map(|Object(p)| GeoPolygon {
                points: p.points.into_iter().map(point).collect(),
            })
            .collect();
        let dates = self
            .dates
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, Object(d))| {
                Ok(TypedDate {
                    date: canonical_date_or_range(&format!("dates[{index}].date"), text(d.date))?,
                    date_type: vocabulary(d.date_type, DATE_TYPES),
                    information: text(d.information),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        let rights = self
            .rights
            .unwrap_or_default()
            .into_iter()
            .map(|Object(r)| Rights {
                statement: text(r.statement),
                uri: text(r.uri),
                identifier: text(r.identifier),
                identifier_scheme: text(r.identifier_scheme),
                scheme_uri: text(r.scheme_uri),
            })
            .collect();
        let alternate_identifiers = self
            .alternate_identifiers
            .unwrap_or_default()
            .into_iter()
            .map(|Object(a)| AlternateIdentifier {
                identifier: text(a.identifier),
                identifier_type: text(a.identifier_type),
            })
            .collect();
        let mut record = DatasetRecord {
            origin: text(self.origin),
            id: text(self.id),
            version: self.version.unwrap_or_default(),
            title: text(self.title),
            description: text(self.description),
            creators,
            publisher: text(self.publisher),
            publication_year: self.publication_year.unwrap_or_default(),
            resource_type: text(self.resource_type),
            keywords: texts(self.keywords),
            disciplines: texts(self.disciplines),
            doi: canonical_doi(&text(self.doi)),
            landing_url: text(self.landing_url),
            license: canonical_license(&text(self.license)),
            access: access as i32,
            embargo_until: canonical_date("embargo_until", text(self.embargo_until))?,
            visibility: visibility as i32,
            groups: texts(self.groups),
            spatial,
            temporal,
            size_bytes: self.size_bytes.unwrap_or_default(),
            file_count: self.file_count.unwrap_or_default(),
            formats: texts(self.formats),
            project: text(self.project),
            updated_at: canonical_date("updated_at", text(self.updated_at))?,
            deleted: self.deleted.unwrap_or_default(),
            subjects,
            related_identifiers,
            funding_references,
            geo_points,
            geo_polygons,
            geo_places: texts(self.geo_places),
            dates,
            rights,
            alternate_identifiers,
            dataset_version: text(self.dataset_version),
            language: text(self.language),
        };
        // Derived fields, as DataCite import derives them: a license a
        // rights statement names, the disciplines FOS subjects name.
        if record.license.is_empty() {
            if let Some(license) = record.rights.iter().find_map(rights_license) {
                record.license = license;
            }
        }
        add_subject_disciplines(&mut record);
        Ok(record)
    }
}

fn text(value: Option<String>) -> String {
    match value {
        Some(value) if value.trim().len() == value.len() => value,
        Some(value) => value.trim().to_owned(),
        None => String::new(),
    }
}

fn texts(values: Option<Vec<String>>) -> Vec<String> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|value| text(Some(value)))
        .collect()
}

fn canonical_date(field: &str, value: String) -> Result<String, RecordError> {
    if value.is_empty() {
        return Ok(value);
    }
    date::canonical(&value).map_err(|error| RecordError::new(field, error.to_string()))
}

/// Bare ORCID iD with an uppercase check character; `https://orcid.org/` dropped.
pub fn canonical_orcid(text: &str) -> String {
    const PREFIXES: [&str; 3] = ["https://orcid.org/", "http://orcid.org/", "orcid.org/"];
    let bare = PREFIXES
        .iter()
        .find_map(|prefix| strip_prefix_ignore_case(text, prefix))
        .unwrap_or(text);
    bare.to_ascii_uppercase()
}

/// The SPDX list's spelling of a license id (SPDX ids match case-insensitively).
pub fn canonical_license(text: &str) -> String {
    if let Some(rest) = strip_prefix_ignore_case(text, LICENSE_REF) {
        return format!("{LICENSE_REF}{rest}");
    }
    if spdx::license_id(text).is_some_and(|license| license.name == text) {
        return text.to_owned();
    }
    spdx::identifiers::LICENSES
        .iter()
        .find(|license| license.name.eq_ignore_ascii_case(text))
        .map_or_else(|| text.to_owned(), |license| license.name.to_owned())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Turns a serde error into the field it is about.
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> RecordError {
    let inner = error.inner();
    if inner.classify() != serde_json::error::Category::Data {
        return syntax_error(inner);
    }
    let segments: Vec<&serde_path_to_error::Segment> = error.path().iter().collect();
    let path = path_text(&segments);
    let message = without_position(inner);
    let quoted = |prefix: &str| -> Option<(String, String)> {
        let rest = message.strip_prefix(prefix)?;
        let (name, rest) = rest.split_once('`')?;
        Some((name.to_owned(), rest.trim_start_matches(", ").to_owned()))
    };
    let child = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some((name, expected)) = quoted("unknown field `") {
        // The path already ends with the unknown key.
        let at_key = matches!(
            segments.last(),
            Some(serde_path_to_error::Segment::Map { key }) if *key == name
        );
        let field = if at_key {
            path.clone()
        } else {
            child(&key_text(&name))
        };
        let reason = if expected.is_empty() {
            "unknown field".to_owned()
        } else {
            format!("unknown field ({expected})")
        };
        return RecordError::new(field, reason);
    }
    if let Some((name, _)) = quoted("missing field `") {
        return RecordError::new(child(&name), "is required");
    }
    if let Some((name, _)) = quoted("duplicate field `") {
        return RecordError::new(child(&name), "is given more than once");
    }
    let field = if path.is_empty() {
        "json".to_owned()
    } else {
        path
    };
    RecordError::new(field, message)
}

fn syntax_error(error: &serde_json::Error) -> RecordError {
    RecordError::new(
        "json",
        format!("{} at column {}", without_position(error), error.column()),
    )
}

/// serde_json's message without its " at line L column C" tail.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&tail) {
        Some(head) => head.to_owned(),
        None => message,
    }
}

/// `creators[0].orcid` from serde's path segments.
fn path_text(segments: &[&serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key_text(key));
            }
            Segment::Unknown => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    path
}

// ---------------------------------------------------------------------------
// The export form.

fn put_text(out: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        out.insert(key.to_owned(), Value::from(value));
    }
}

fn put_number(out: &mut Map<String, Value>, key: &str, value: u64) {
    if value != 0 {
        out.insert(key.to_owned(), Value::from(value));
    }
}

fn put_list(out: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        out.insert(key.to_owned(), Value::from(values.to_vec()));
    }
}

fn put_objects<T>(
    out: &mut Map<String, Value>,
    key: &str,
    values: &[T],
    to_json: impl Fn(&T) -> Value,
) {
    if !values.is_empty() {
        out.insert(key.to_owned(), values.iter().map(to_json).collect());
    }
}

/// An object of the non-empty text fields among `fields`.
fn object(fields: &[(&str, &String)]) -> Value {
    let mut out = Map::new();
    for (key, value) in fields {
        put_text(&mut out, key, value);
    }
    Value::Object(out)
}

fn point_json(point: &GeoPoint) -> Value {
    let mut out = Map::new();
    out.insert("longitude".into(), Value::from(point.longitude));
    out.insert("latitude".into(), Value::from(point.latitude));
    Value::Object(out)
}

fn creator_json(creator: &Creator) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::from(creator.name.as_str()));
    put_text(&mut out, "affiliation", &creator.affiliation);
    put_text(&mut out, "orcid", &creator.orcid);
    Value::Object(out)
}

fn box_json(bbox: &BoundingBox) -> Value {
    let mut out = Map::new();
    out.insert("west".into(), Value::from(bbox.west));
    out.insert("south".into(), Value::from(bbox.south));
    out.insert("east".into(), Value::from(bbox.east));
    out.insert("north".into(), Value::from(bbox.north));
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// The rules.

const LICENSE_REF: &str = "LicenseRef-";

#[derive(Clone, Copy)]
enum Limit {
    Chars(usize),
    Bytes(usize),
}

/// Whether a text may hold line breaks and tabs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    One,
    Many,
}

/// Where a rule's error points: a field's name, or a path such as
/// `keywords[3]` built only when there is an error to report (a valid
/// record is checked without formatting one).
trait FieldPath {
    fn path(self) -> String;
}

impl FieldPath for &str {
    fn path(self) -> String {
        self.to_owned()
    }
}

/// A path built on demand.
struct Lazy<F>(F);

impl<F: FnOnce() -> String> FieldPath for Lazy<F> {
    fn path(self) -> String {
        (self.0)()
    }
}

fn check_text(
    field: impl FieldPath,
    value: &str,
    limit: Limit,
    required: bool,
    lines: Lines,
) -> Result<(), RecordError> {
    if value.is_empty() {
        return if required {
            Err(RecordError::new(field.path(), "is required"))
        } else {
            Ok(())
        };
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(RecordError::new(
            field.path(),
            "has leading or trailing whitespace",
        ));
    }
    let ascii = value.is_ascii();
    match limit {
        Limit::Chars(max) => {
            let count = if ascii {
                value.len()
            } else {
                value.chars().count()
            };
            if count > max {
                return Err(RecordError::new(
                    field.path(),
                    format!("is {count} characters long; at most {max} are allowed"),
                ));
            }
        }
        Limit::Bytes(max) => {
            if value.len() > max {
                return Err(RecordError::new(
                    field.path(),
                    format!("is {} bytes long; at most {max} are allowed", value.len()),
                ));
            }
        }
    }
    let allowed = |c: char| lines == Lines::Many && matches!(c, '\n' | '\r' | '\t');
    let control = |c: char| c.is_control() && !allowed(c);
    // In ASCII text the control characters are the bytes below 0x20 and
    // 0x7F; other text is read character by character (C1 controls).
    let found = if ascii {
        value
            .bytes()
            .find(|&b| (b < 0x20 || b == 0x7f) && control(char::from(b)))
            .map(char::from)
    } else {
        value.chars().find(|&c| control(c))
    };
    if let Some(c) = found {
        return Err(RecordError::new(
            field.path(),
            format!("contains the control character U+{:04X}", u32::from(c)),
        ));
    }
    Ok(())
}

/// `id` and `origin`: an identifier, no whitespace. Emptiness is the caller's concern.
fn check_creators(creators: &[Creator], required: bool) -> Result<(), RecordError> {
    if creators.is_empty() && required {
        return Err(RecordError::new(
            "creators",
            "is required: list at least one creator with a name",
        ));
    }
    if creators.len() > MAX_CREATORS {
        return Err(RecordError::new(
            "creators",
            format!(
                "lists {} creators; at most {MAX_CREATORS} are allowed",
                creators.len()
            ),
        ));
    }
    for (index, creator) in creators.iter().enumerate() {
        let field = |name: &str| format!("creators[{index}].{name}");
        check_text(
            Lazy(|| field("name")),
            &creator.name,
            Limit::Chars(MAX_NAME_CHARS),
            true,
            Lines::One,
        )?;
        check_text(
            Lazy(|| field("affiliation")),
            &creator.affiliation,
            Limit::Chars(MAX_NAME_CHARS),
            false,
            Lines::One,
        )?;
        if !creator.orcid.is_empty() {
            check_orcid(&field("orcid"), &creator.orcid)?;
        }
    }
    Ok(())
}

/// `dddd-dddd-dddd-dddX` with an ISO 7064 MOD 11-2 check character.
fn check_orcid(field: &str, value: &str) -> Result<(), RecordError> {
    let shape_error = || {
        RecordError::new(
            field,
            format!(
                "`{}` is not an ORCID iD (expected 0000-0000-0000-000X)",
                short_text(value)
            ),
        )
    };
    let bytes = value.as_bytes();
    if bytes.len() != 19 {
        return Err(shape_error());
    }
    let mut digits = [0u8; 15];
    let mut count = 0;
    for (position, &byte) in bytes[..18].iter().enumerate() {
        if matches!(position, 4 | 9 | 14) {
            if byte != b'-' {
                return Err(shape_error());
            }
        } else if byte.is_ascii_digit() {
            digits[count] = byte - b'0';
            count += 1;
        } else {
            return Err(shape_error());
        }
    }
    let check = bytes[18];
    if !(check.is_ascii_digit() || check == b'X') {
        return Err(shape_error());
    }
    if check != orcid_check_character(&digits) {
        return Err(RecordError::new(
            field,
            format!("`{value}` has a wrong check character: the iD is mistyped"),
        ));
    }
    Ok(())
}

/// ISO 7064 MOD 11-2 over the first 15 digits of an ORCID iD.
fn orcid_check_character(digits: &[u8; 15]) -> u8 {
    let total = digits
        .iter()
        .fold(0u32, |total, &digit| (total + u32::from(digit)) * 2 % 11);
    match (12 - total) % 11 {
        10 => b'X',
        // Below 10, so it fits a digit.
        check => b'0' + check as u8,
    }
}

fn check_publication_year(year: u32, required: bool) -> Result<(), RecordError> {
    if year == 0 {
        return if required {
            Err(RecordError::new("publication_year", "is required"))
        } else {
            Ok(())
        };
    }
    if !(MIN_PUBLICATION_YEAR..=MAX_PUBLICATION_YEAR).contains(&year) {
        return Err(RecordError::new(
            "publication_year",
            format!("{year} is not a year from {MIN_PUBLICATION_YEAR} to {MAX_PUBLICATION_YEAR}"),
        ));
    }
    Ok(())
}

/// Keywords, disciplines, formats: a bounded list of short non-empty terms.
fn check_terms(field: &str, values: &[String], max_items: usize) -> Result<(), RecordError> {
    if values.len() > max_items {
        return Err(RecordError::new(
            field,
            format!(
                "has {} entries; at most {max_items} are allowed",
                values.len()
            ),
        ));
    }
    for (index, value) in values.iter().enumerate() {
        let path = || format!("{field}[{index}]");
        if value.is_empty() {
            return Err(RecordError::new(path(), "is empty"));
        }
        check_text(
            Lazy(path),
            value,
            Limit::Chars(MAX_TERM_CHARS),
            true,
            Lines::One,
        )?;
    }
    Ok(())
}

/// A bare, lowercase DOI: `10.<registrant>/<suffix>`, the registrant being
/// at least four digits, optionally with `.`-separated subdivisions.
fn check_doi(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_DOI_BYTES {
        return Err(RecordError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_DOI_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    let shape_error = || {
        RecordError::new(
            field,
            format!(
                "`{}` is not a DOI (expected the bare form 10.<registrant>/<suffix>, e.g. 10.1234/abc)",
                short_text(value)
            ),
        )
    };
    let (registrant, suffix) = value
        .strip_prefix("10.")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(shape_error)?;
    let code_ok = registrant
        .split('.')
        .next()
        .is_some_and(|code| code.len() >= 4)
        && registrant
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if !code_ok || suffix.is_empty() {
        return Err(shape_error());
    }
    if suffix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RecordError::new(
            field,
            "the suffix contains whitespace or a control character",
        ));
    }
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RecordError::new(
            field,
            format!(
                "`{value}` is not lowercase (DOIs are case-insensitive and kept as `{}`)",
                value.to_ascii_lowercase()
            ),
        ));
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host, no credentials, no whitespace.
fn check_url(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_URL_BYTES {
        return Err(RecordError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_URL_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RecordError::new(
            field,
            "contains whitespace or a control character (percent-encode it)",
        ));
    }
    let not_http = || {
        RecordError::new(
            field,
            format!("`{value}` is not an absolute http or https URL"),
        )
    };
    let (scheme, rest) = value.split_once("://").ok_or_else(not_http)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(not_http());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(RecordError::new(
            field,
            "must not carry a user name or password",
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        let (address, after) = bracketed.split_once(']').ok_or_else(not_http)?;
        let valid = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return Err(RecordError::new(
                field,
                format!("`{address}` is not an IPv6 address"),
            ));
        }
        match after {
            "" => (address, None),
            _ => (address, Some(after.strip_prefix(':').ok_or_else(not_http)?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(RecordError::new(field, format!("`{value}` has no host")));
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(RecordError::new(
            field,
            format!("`{host}` is not a host name"),
        ));
    }
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return Err(RecordError::new(
                field,
                format!("`{port}` is not a port number"),
            ));
        }
    }
    Ok(())
}

/// One SPDX license identifier, spelled as the SPDX list does, or `LicenseRef-<idstring>`.
fn check_license(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_LICENSE_BYTES {
        return Err(RecordError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_LICENSE_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(idstring) = value.strip_prefix(LICENSE_REF) {
        let valid = !idstring.is_empty()
            && idstring
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(RecordError::new(
                field,
                format!(
                    "`{}`: after `LicenseRef-` only letters, digits, `.` and `-` may follow",
                    short_text(value)
                ),
            ));
        }
        return Ok(());
    }
    if spdx::license_id(value).is_some_and(|license| license.name == value) {
        return Ok(());
    }
    if value.contains(char::is_whitespace) {
        return Err(RecordError::new(
            field,
            format!(
                "`{}` looks like a license expression; give one SPDX identifier or a LicenseRef-…",
                short_text(value)
            ),
        ));
    }
    Err(RecordError::new(
        field,
        format!(
            "`{}` is not an SPDX license identifier (see https://spdx.org/licenses/) nor a LicenseRef-…",
            short_text(value)
        ),
    ))
}

fn check_access(record: &DatasetRecord, required: bool) -> Result<(), RecordError> {
    let access = Access::try_from(record.access).map_err(|_| {
        RecordError::new(
            "access",
            format!("{} is not a known access value", record.access),
        )
    })?;
    let embargoed = access == Access::Embargoed;
    if embargoed && record.embargo_until.is_empty() && required {
        return Err(RecordError::new(
            "embargo_until",
            "is required when access is embargoed: the date the embargo ends",
        ));
    }
    if !embargoed && !record.embargo_until.is_empty() {
        return Err(RecordError::new(
            "embargo_until",
            format!(
                "is only allowed when access is embargoed (access is {})",
                access_name(record.access)
            ),
        ));
    }
    check_date("embargo_until", &record.embargo_until)
}

fn check_visibility(record: &DatasetRecord, required: bool) -> Result<(), RecordError> {
    let visibility = Visibility::try_from(record.visibility).map_err(|_| {
        RecordError::new(
            "visibility",
            format!("{} is not a known visibility value", record.visibility),
        )
    })?;
    let by_groups = visibility == Visibility::Groups;
    if by_groups && record.groups.is_empty() && required {
        return Err(RecordError::new(
            "groups",
            "is required when visibility is groups: name at least one group",
        ));
    }
    if !by_groups && !record.groups.is_empty() {
        return Err(RecordError::new(
            "groups",
            format!(
                "are only allowed when visibility is groups (visibility is {})",
                visibility_name(record.visibility)
            ),
        ));
    }
    if record.groups.len() > MAX_GROUPS {
        return Err(RecordError::new(
            "groups",
            format!(
                "has {} entries; at most {MAX_GROUPS} are allowed",
                record.groups.len()
            ),
        ));
    }
    for (index, group) in record.groups.iter().enumerate() {
        check_group(&format!("groups[{index}]"), group)?;
    }
    Ok(())
}

fn check_group(field: &str, name: &str) -> Result<(), RecordError> {
    check_group_name(name).map_err(|reason| RecordError::new(field, reason))
}

/// The rule for a group name, wherever one is written (records, the trust
/// store): `[a-z0-9][a-z0-9-_.]*`, at most [`MAX_GROUP_BYTES`].
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_GROUP_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_GROUP_BYTES} are allowed",
            name.len()
        ));
    }
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if !(first_ok && rest_ok) {
        return Err(format!(
            "`{}` is not a group name (lowercase letters, digits, `-`, `_`, `.`; starting with a letter or digit)",
            short_text(name)
        ));
    }
    Ok(())
}

/// WGS84 degrees; west > east is a box across the antimeridian, and valid.
fn check_spatial(boxes: &[BoundingBox]) -> Result<(), RecordError> {
    if boxes.len() > MAX_BOXES {
        return Err(RecordError::new(
            "spatial",
            format!("has {} boxes; at most {MAX_BOXES} are allowed", boxes.len()),
        ));
    }
    for (index, bbox) in boxes.iter().enumerate() {
        let sides = [
            ("west", bbox.west, 180.0),
            ("south", bbox.south, 90.0),
            ("east", bbox.east, 180.0),
            ("north", bbox.north, 90.0),
        ];
        for (side, degrees, limit) in sides {
            let field = format!("spatial[{index}].{side}");
            if !degrees.is_finite() {
                return Err(RecordError::new(
                    field,
                    format!("{degrees} is not a finite number of degrees"),
                ));
            }
            if !(-limit..=limit).contains(&degrees) {
                return Err(RecordError::new(
                    field,
                    format!("{degrees} is outside [-{limit}, {limit}] degrees"),
                ));
            }
        }
        if bbox.south > bbox.north {
            return Err(RecordError::new(
                format!("spatial[{index}].south"),
                format!(
                    "south edge {} lies north of the north edge {}",
                    bbox.south, bbox.north
                ),
            ));
        }
    }
    Ok(())
}

/// Both bounds canonical dates, either open; the start's first second no
/// later than the end's last second (`2018` to `2018` is the whole year).
fn check_temporal(temporal: Option<&TemporalCoverage>) -> Result<(), RecordError> {
    let Some(temporal) = temporal else {
        return Ok(());
    };
    if temporal.start.is_empty() && temporal.end.is_empty() {
        return Err(RecordError::new(
            "temporal",
            "has neither start nor end; leave it out when the coverage is unknown",
        ));
    }
    check_date("temporal.start", &temporal.start)?;
    check_date("temporal.end", &temporal.end)?;
    if temporal.start.is_empty() || temporal.end.is_empty() {
        return Ok(());
    }
    let span = |field: &str, text: &str| {
        date::bounds(text).map_err(|error| RecordError::new(field, error.to_string()))
    };
    let (first, _) = span("temporal.start", &temporal.start)?;
    let (_, last) = span("temporal.end", &temporal.end)?;
    if first > last {
        return Err(RecordError::new(
            "temporal",
            format!(
                "starts ({}) after it ends ({})",
                temporal.start, temporal.end
            ),
        ));
    }
    Ok(())
}

/// A bounded list: the count, before anything in it is looked at.
fn check_count(field: &str, count: usize, max: usize) -> Result<(), RecordError> {
    if count > max {
        return Err(RecordError::new(
            field,
            format!("has {count} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// One of a controlled list, spelled as the list does.
fn check_vocabulary(
    field: &str,
    value: &str,
    list: &[&str],
    required: bool,
) -> Result<(), RecordError> {
    if value.is_empty() {
        return if required {
            Err(RecordError::new(field, "is required"))
        } else {
            Ok(())
        };
    }
    if !list.contains(&value) {
        return Err(RecordError::new(
            field,
            format!(
                "`{}` is not one of DataCite's terms: {}",
                short_text(value),
                list.join(", ")
            ),
        ));
    }
    Ok(())
}

/// An identifier of something else: one line, bounded in bytes.
fn check_identifier(field: &str, value: &str, required: bool) -> Result<(), RecordError> {
    check_text(
        field,
        value,
        Limit::Bytes(MAX_IDENTIFIER_BYTES),
        required,
        Lines::One,
    )
}

/// An absolute URI (`scheme:rest`, any scheme: `https:`, `info:`, `urn:`),
/// without whitespace, bounded; or empty.
fn check_uri(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_URI_BYTES {
        return Err(RecordError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_URI_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RecordError::new(
            field,
            "contains whitespace or a control character (percent-encode it)",
        ));
    }
    let scheme = value.split_once(':').map(|(scheme, _)| scheme);
    let scheme_ok = scheme.is_some_and(|scheme| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !scheme_ok {
        return Err(RecordError::new(
            field,
            format!(
                "`{}` is not an absolute URI (expected scheme:…, e.g. https://…)",
                short_text(value)
            ),
        ));
    }
    Ok(())
}

/// A JSON key as part of a field path: as it is when it is a short word,
/// else as [`short_text`] gives it (a key may hold control characters,
/// which an error message must not hand to a terminal).
fn key_text(key: &str) -> String {
    if key.len() <= 60 && key.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        key.to_owned()
    } else {
        short_text(key)
    }
}

/// Subjects: bounded; each a value with a scheme, a URI or a code (a bare
/// value is a keyword); the disciplines FOS subjects name are listed.
fn check_subjects(record: &DatasetRecord) -> Result<(), RecordError> {
    check_count("subjects", record.subjects.len(), MAX_SUBJECTS)?;
    for (index, subject) in record.subjects.iter().enumerate() {
        let field = |name: &str| format!("subjects[{index}].{name}");
        check_text(
            Lazy(|| field("value")),
            &subject.value,
            Limit::Chars(MAX_SUBJECT_CHARS),
            true,
            Lines::One,
        )?;
        check_text(
            Lazy(|| field("scheme")),
            &subject.scheme,
            Limit::Chars(MAX_NAME_CHARS),
            false,
            Lines::One,
        )?;
        check_uri(&field("scheme_uri"), &subject.scheme_uri)?;
        check_uri(&field("value_uri"), &subject.value_uri)?;
        check_text(
            Lazy(|| field("classification_code")),
            &subject.classification_code,
            Limit::Chars(MAX_TERM_CHARS),
            false,
            Lines::One,
        )?;
        if subject.classification_code.contains(char::is_whitespace) {
            return Err(RecordError::new(
                field("classification_code"),
                "contains whitespace",
            ));
        }
        if is_keyword(subject) {
            return Err(RecordError::new(
                format!("subjects[{index}]"),
                "has no scheme, URI or code: a bare term belongs in `keywords`",
            ));
        }
        let discipline_only = subject.scheme.eq_ignore_ascii_case(DISCIPLINE_SCHEME)
            && subject.scheme_uri.is_empty()
            && subject.value_uri.is_empty()
            && subject.classification_code.is_empty();
        if discipline_only {
            return Err(RecordError::new(
                format!("subjects[{index}]"),
                "is a discipline: give it in `disciplines`",
            ));
        }
        if let Some(discipline) = subject_discipline(subject) {
            if !record.disciplines.contains(&discipline) {
                return Err(RecordError::new(
                    "disciplines",
                    format!("lacks `{discipline}`, which subjects[{index}] names"),
                ));
            }
        }
    }
    Ok(())
}

fn check_related_identifiers(related: &[RelatedIdentifier]) -> Result<(), RecordError> {
    check_count(
        "related_identifiers",
        related.len(),
        MAX_RELATED_IDENTIFIERS,
    )?;
    for (index, r) in related.iter().enumerate() {
        let field = |name: &str| format!("related_identifiers[{index}].{name}");
        check_identifier(&field("identifier"), &r.identifier, true)?;
        check_vocabulary(
            &field("identifier_type"),
            &r.identifier_type,
            RELATED_IDENTIFIER_TYPES,
            true,
        )?;
        check_vocabulary(
            &field("relation_type"),
            &r.relation_type,
            RELATION_TYPES,
            true,
        )?;
        check_vocabulary(
            &field("resource_type_general"),
            &r.resource_type_general,
            RESOURCE_TYPES,
            false,
        )?;
    }
    Ok(())
}

fn check_funding_references(funding: &[FundingReference]) -> Result<(), RecordError> {
    check_count("funding_references", funding.len(), MAX_FUNDING_REFERENCES)?;
    for (index, f) in funding.iter().enumerate() {
        let field = |name: &str| format!("funding_references[{index}].{name}");
        check_text(
            Lazy(|| field("funder_name")),
            &f.funder_name,
            Limit::Chars(MAX_NAME_CHARS),
            true,
            Lines::One,
        )?;
        check_identifier(&field("funder_identifier"), &f.funder_identifier, false)?;
        check_vocabulary(
            &field("funder_identifier_type"),
            &f.funder_identifier_type,
            FUNDER_IDENTIFIER_TYPES,
            !f.funder_identifier.is_empty(),
        )?;
        if f.funder_identifier.is_empty() && !f.funder_identifier_type.is_empty() {
            return Err(RecordError::new(
                field("funder_identifier_type"),
                "is given without a funder_identifier",
            ));
        }
        check_identifier(&field("award_number"), &f.award_number, false)?;
        check_uri(&field("award_uri"), &f.award_uri)?;
        check_text(
            Lazy(|| field("award_title")),
            &f.award_title,
            Limit::Chars(MAX_TITLE_CHARS),
            false,
            Lines::One,
        )?;
    }
    Ok(())
}

/// WGS84 degrees, finite and in range.
fn check_point(field: &str, point: &GeoPoint) -> Result<(), RecordError> {
    for (name, degrees, limit) in [
        ("longitude", point.longitude, 180.0),
        ("latitude", point.latitude, 90.0),
    ] {
        if !degrees.is_finite() {
            return Err(RecordError::new(
                format!("{field}.{name}"),
                format!("{degrees} is not a finite number of degrees"),
            ));
        }
        if !(-limit..=limit).contains(&degrees) {
            return Err(RecordError::new(
                format!("{field}.{name}"),
                format!("{degrees} is outside [-{limit}, {limit}] degrees"),
            ));
        }
    }
    Ok(())
}

/// Points, polygons (closed rings of bounded length) and place names.
fn check_geo(record: &DatasetRecord) -> Result<(), RecordError> {
    check_count("geo_points", record.geo_points.len(), MAX_GEO_POINTS)?;
    for (index, point) in record.geo_points.iter().enumerate() {
        check_point(&format!("geo_points[{index}]"), point)?;
    }
    check_count("geo_polygons", record.geo_polygons.len(), MAX_GEO_POLYGONS)?;
    for (index, polygon) in record.geo_polygons.iter().enumerate() {
        let field = format!("geo_polygons[{index}].points");
        let count = polygon.points.len();
        if count > MAX_POLYGON_POINTS {
            return Err(RecordError::new(
                field,
                format!("has {count} points; at most {MAX_POLYGON_POINTS} are allowed"),
            ));
        }
        if count < MIN_POLYGON_POINTS {
            return Err(RecordError::new(
                field,
                format!(
                    "has {count} points; a polygon is a closed ring of at least {MIN_POLYGON_POINTS} (the last repeating the first)"
                ),
            ));
        }
        for (at, point) in polygon.points.iter().enumerate() {
            check_point(&format!("{field}[{at}]"), point)?;
        }
        let (first, last) = (&polygon.points[0], &polygon.points[count - 1]);
        if first != last {
            return Err(RecordError::new(
                field,
                format!(
                    "is not closed: the last point ({}, {}) must repeat the first ({}, {})",
                    last.longitude, last.latitude, first.longitude, first.latitude
                ),
            ));
        }
    }
    check_count("geo_places", record.geo_places.len(), MAX_GEO_PLACES)?;
    for (index, place) in record.geo_places.iter().enumerate() {
        check_text(
            Lazy(|| format!("geo_places[{index}]")),
            place,
            Limit::Chars(MAX_NAME_CHARS),
            true,
            Lines::One,
        )?;
    }
    Ok(())
}

/// Typed dates: a canonical date or range, a DataCite type. A plain
/// `Updated` or `Collected` date goes in `updated_at` or `temporal` first.
fn check_dates(record: &DatasetRecord) -> Result<(), RecordError> {
    check_count("dates", record.dates.len(), MAX_DATES)?;
    for (index, d) in record.dates.iter().enumerate() {
        let field = |name: &str| format!("dates[{index}].{name}");
        if d.date.is_empty() {
            return Err(RecordError::new(field("date"), "is required"));
        }
        match d.date.split_once('/') {
            None => check_date(&field("date"), &d.date)?,
            Some((start, end)) => {
                if start.is_empty() && end.is_empty() {
                    return Err(RecordError::new(
                        field("date"),
                        "is a range with neither start nor end",
                    ));
                }
                check_date(&field("date"), start)?;
                check_date(&field("date"), end)?;
            }
        }
        check_vocabulary(&field("date_type"), &d.date_type, DATE_TYPES, true)?;
        check_text(
            Lazy(|| field("information")),
            &d.information,
            Limit::Chars(MAX_NAME_CHARS),
            false,
            Lines::One,
        )?;
        if d.information.is_empty() {
            let dedicated = match d.date_type.as_str() {
                "Updated" if record.updated_at.is_empty() => Some("updated_at"),
                "Collected" if record.temporal.is_none() => Some("temporal"),
                _ => None,
            };
            if let Some(dedicated) = dedicated {
                return Err(RecordError::new(
                    format!("dates[{index}]"),
                    format!(
                        "is the record's {} date: give it as `{dedicated}`",
                        d.date_type
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Rights statements: bounded; none stating an access right (that is
/// `access`) or standing for the record's license alone (that is
/// `license`); a license they name is kept in `license` too.
fn check_rights(record: &DatasetRecord) -> Result<(), RecordError> {
    check_count("rights", record.rights.len(), MAX_RIGHTS)?;
    for (index, r) in record.rights.iter().enumerate() {
        let field = |name: &str| format!("rights[{index}].{name}");
        check_text(
            Lazy(|| field("statement")),
            &r.statement,
            Limit::Chars(MAX_RIGHTS_CHARS),
            false,
            Lines::Many,
        )?;
        check_uri(&field("uri"), &r.uri)?;
        check_identifier(&field("identifier"), &r.identifier, false)?;
        check_text(
            Lazy(|| field("identifier_scheme")),
            &r.identifier_scheme,
            Limit::Chars(MAX_NAME_CHARS),
            false,
            Lines::One,
        )?;
        check_uri(&field("scheme_uri"), &r.scheme_uri)?;
        if r.statement.is_empty() && r.uri.is_empty() && r.identifier.is_empty() {
            return Err(RecordError::new(
                format!("rights[{index}]"),
                "has no statement, URI or identifier",
            ));
        }
        if access_of_rights_uri(&r.uri).is_some() {
            return Err(RecordError::new(
                field("uri"),
                format!("`{}` is an access right: give it as `access`", r.uri),
            ));
        }
        if !record.license.is_empty() && license_rights(&record.license) == *r {
            return Err(RecordError::new(
                format!("rights[{index}]"),
                "stands for the license alone: give it as `license`",
            ));
        }
    }
    if record.license.is_empty() {
        if let Some((index, license)) = record
            .rights
            .iter()
            .enumerate()
            .find_map(|(index, r)| Some((index, rights_license(r)?)))
        {
            return Err(RecordError::new(
                "license",
                format!("is required: rights[{index}] names `{license}`"),
            ));
        }
    }
    Ok(())
}

/// Alternate identifiers other than the two the model keeps elsewhere: the
/// landing page (`URL`) and the node's own `ORIGIN/ID` (`meridian`).
fn check_alternate_identifiers(record: &DatasetRecord) -> Result<(), RecordError> {
    let list = &record.alternate_identifiers;
    check_count(
        "alternate_identifiers",
        list.len(),
        MAX_ALTERNATE_IDENTIFIERS,
    )?;
    for (index, a) in list.iter().enumerate() {
        let field = |name: &str| format!("alternate_identifiers[{index}].{name}");
        check_identifier(&field("identifier"), &a.identifier, true)?;
        check_text(
            Lazy(|| field("identifier_type")),
            &a.identifier_type,
            Limit::Chars(MAX_NAME_CHARS),
            true,
            Lines::One,
        )?;
        if a.identifier_type == MERIDIAN_ID_TYPE {
            return Err(RecordError::new(
                field("identifier_type"),
                "`meridian` is the node's own ORIGIN/ID, written on export",
            ));
        }
        let url = a.identifier_type.eq_ignore_ascii_case("URL");
        if url && (record.landing_url.is_empty() || a.identifier == record.landing_url) {
            return Err(RecordError::new(
                format!("alternate_identifiers[{index}]"),
                "is the landing page: give it as `landing_url`",
            ));
        }
    }
    Ok(())
}

/// Whether `value` is a language tag `language` accepts.
pub fn check_language_tag(value: &str) -> bool {
    !value.is_empty() && check_language("language", value).is_ok()
}

/// An IETF BCP 47 tag with an ISO 639 primary subtag, in the shape
/// `xs:language` takes: `[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*`.
fn check_language(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_LANGUAGE_BYTES {
        return Err(RecordError::new(
            field,
            format!(
                "is {} bytes long; at most {MAX_LANGUAGE_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    let mut parts = value.split('-');
    // The primary language subtag: ISO 639 (two or three letters).
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !(primary_ok && rest_ok) {
        return Err(RecordError::new(
            field,
            format!(
                "`{}` is not a language tag (IETF BCP 47, e.g. `en`, `pt-BR`)",
                short_text(value)
            ),
        ));
    }
    Ok(())
}

/// A date in canonical form, or empty.
fn check_date(field: &str, value: &str) -> Result<(), RecordError> {
    if value.is_empty() {
        return Ok(());
    }
    let canonical =
        date::canonical(value).map_err(|error| RecordError::new(field, error.to_string()))?;
    if canonical != value {
        return Err(RecordError::new(
            field,
            format!(
                "`{}` is not in canonical form; write `{}`",
                short_text(value),
                short_text(&canonical)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Three lines of the example holdings: a DOI and ORCID with a box across
    /// the antimeridian; an embargo with year-precision coverage; a record
    /// shown to groups under a LicenseRef.
    const SEA_ICE: &str = r#"{"id": "PDC-2021-0412", "title": "Arctic sea ice thickness from CryoSat-2 and SMOS, 2010-2020", "description": "Monthly gridded sea ice thickness over the Arctic Ocean merged from CryoSat-2 radar altimetry and SMOS L-band radiometry, 25 km EASE2 grid, with uncertainty estimates.", "creators": [{"name": "Li, Xinqing", "affiliation": "Polar Research Institute", "orcid": "0000-0002-1825-0097"}], "publisher": "National Polar Science Data Center", "publication_year": 2021, "resource_type": "Dataset", "keywords": ["sea ice", "thickness", "altimetry", "Arctic Ocean"], "disciplines": ["earth"], "doi": "10.1234/pdc.2021.0412", "landing_url": "https://data.example.org/pdc/2021-0412", "license": "CC-BY-4.0", "access": "open", "visibility": "public", "spatial": [{"west": 160.0, "south": 60.0, "east": -120.0, "north": 90.0}], "temporal": {"start": "2010-10-01", "end": "2020-04-30"}, "size_bytes": 48318382080, "file_count": 240, "formats": ["NetCDF"], "project": "Arctic sea ice monitoring", "updated_at": "2023-03-14T08:00:00Z"}"#;
    const ICE_CORE: &str = r#"{"id": "PDC-2019-0033", "title": "Dome A ice core stable isotopes, 0-800 m", "description": "Oxygen and hydrogen stable isotope ratios measured at 5 cm resolution on the Dome A shallow ice core, with depth-age model.", "creators": [{"name": "Zhang, Wei", "affiliation": "Polar Research Institute"}], "publisher": "National Polar Science Data Center", "publication_year": 2019, "resource_type": "Dataset", "keywords": ["ice core", "stable isotopes", "paleoclimate", "Antarctica"], "disciplines": ["earth"], "license": "CC-BY-4.0", "access": "embargoed", "embargo_until": "2027-01-01", "visibility": "federation", "spatial": [{"west": 77.0, "south": -80.5, "east": 77.5, "north": -80.3}], "temporal": {"start": "1200", "end": "2018"}, "size_bytes": 52428800, "file_count": 3, "formats": ["CSV"], "project": "CHINARE-35", "updated_at": "2024-01-09T02:30:00Z"}"#;
    const GENOMES: &str = r#"{"id": "GEN-WGS-118", "title": "Whole-genome sequencing of 1,200 hepatocellular carcinoma tumour-normal pairs", "description": "Somatic variant calls and read alignments from paired tumour and blood samples; raw reads available under controlled access after data access committee approval.", "creators": [{"name": "Chen, Yu", "affiliation": "Institute of Genomic Medicine"}], "publisher": "Institute of Genomic Medicine", "publication_year": 2024, "resource_type": "Dataset", "keywords": ["whole-genome sequencing", "liver cancer", "somatic variants"], "disciplines": ["life"], "license": "LicenseRef-controlled-access", "access": "restricted", "visibility": "groups", "groups": ["biomed-consortium"], "size_bytes": 395824185344000, "file_count": 4800, "formats": ["CRAM", "VCF"], "project": "Liver cancer genome atlas", "updated_at": "2024-06-30T12:00:00Z"}"#;

    fn parse(line: &str) -> DatasetRecord {
        parse_json_line(line).unwrap_or_else(|error| panic!("{error}\n{line}"))
    }

    /// A valid record to break one rule at a time.
    fn sea_ice() -> DatasetRecord {
        parse(SEA_ICE)
    }

    /// `SEA_ICE` with one top-level field replaced (or added).
    fn sea_ice_with(field: &str, value: Value) -> String {
        let mut json: Value = serde_json::from_str(SEA_ICE).unwrap();
        json[field] = value;
        json.to_string()
    }

    #[track_caller]
    fn assert_rejected(
        result: Result<impl std::fmt::Debug, RecordError>,
        field: &str,
        reason_part: &str,
    ) {
        let error = result.expect_err("accepted");
        assert_eq!(error.field, field, "{error}");
        assert!(
            error.reason.contains(reason_part),
            "reason `{}` lacks `{reason_part}`",
            error.reason
        );
    }

    #[track_caller]
    fn assert_invalid(record: &DatasetRecord, field: &str, reason_part: &str) {
        assert_rejected(validate(record), field, reason_part);
    }

    // --- The example holdings.

    /// A ported Creative Commons license is its own SPDX license: it was
    /// read as the unported one (`…/by/3.0/de/` as `CC-BY-3.0`).
    #[test]
    fn ported_creative_commons_licenses_keep_their_port() {
        let license = |uri: &str| {
            rights_license(&Rights {
                uri: uri.to_owned(),
                ..Default::default()
            })
        };
        let cc = "https://creativecommons.org/licenses/";
        for (path, want) in [
            ("by/3.0/de/", Some("CC-BY-3.0-DE")),
            ("by-sa/2.0/uk", Some("CC-BY-SA-2.0-UK")),
            ("by-nc-nd/3.0/igo/", Some("CC-BY-NC-ND-3.0-IGO")),
            // A port SPDX does not list is no SPDX license.
            ("by/3.0/es/", None),
            // Pages of an unported license.
            ("by/4.0/", Some("CC-BY-4.0")),
            ("by/4.0/deed.de", Some("CC-BY-4.0")),
            ("by/4.0/legalcode", Some("CC-BY-4.0")),
        ] {
            assert_eq!(license(&format!("{cc}{path}")).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn example_holdings_parse_with_every_field() {
        let record = sea_ice();
        assert_eq!(record.id, "PDC-2021-0412");
        assert_eq!(record.creators.len(), 1);
        assert_eq!(record.creators[0].name, "Li, Xinqing");
        assert_eq!(record.creators[0].affiliation, "Polar Research Institute");
        assert_eq!(record.creators[0].orcid, "0000-0002-1825-0097");
        assert_eq!(record.publication_year, 2021);
        assert_eq!(record.keywords.len(), 4);
        assert_eq!(record.disciplines, ["earth"]);
        assert_eq!(record.doi, "10.1234/pdc.2021.0412");
        assert_eq!(record.license, "CC-BY-4.0");
        assert_eq!(record.access, Access::Open as i32);
        assert_eq!(record.visibility, Visibility::Public as i32);
        let bbox = &record.spatial[0];
        assert_eq!(
            (bbox.west, bbox.south, bbox.east, bbox.north),
            (160.0, 60.0, -120.0, 90.0)
        );
        let temporal = record.temporal.as_ref().unwrap();
        assert_eq!(
            (temporal.start.as_str(), temporal.end.as_str()),
            ("2010-10-01", "2020-04-30")
        );
        assert_eq!(record.size_bytes, 48_318_382_080);
        assert_eq!(record.file_count, 240);
        assert_eq!(record.formats, ["NetCDF"]);
        assert_eq!(record.project, "Arctic sea ice monitoring");
        assert_eq!(record.updated_at, "2023-03-14T08:00:00Z");
        assert!(record.origin.is_empty() && record.version == 0 && !record.deleted);

        let record = parse(ICE_CORE);
        assert_eq!(record.access, Access::Embargoed as i32);
        assert_eq!(record.embargo_until, "2027-01-01");
        assert_eq!(record.visibility, Visibility::Federation as i32);
        assert_eq!(record.temporal.unwrap().start, "1200");

        let record = parse(GENOMES);
        assert_eq!(record.visibility, Visibility::Groups as i32);
        assert_eq!(record.groups, ["biomed-consortium"]);
        assert_eq!(record.license, "LicenseRef-controlled-access");
        assert_eq!(record.size_bytes, 395_824_185_344_000);
        assert!(record.temporal.is_none() && record.spatial.is_empty());
    }

    // --- Canonical form on import.

    #[test]
    fn import_trims_and_canonicalises() {
        let line = r#"{"id": " X-1 ", "title": "  Ice  ", "creators": [{"name": " A ", "orcid": "https://orcid.org/0000-0002-1694-233x"}],
            "publisher": "P", "publication_year": 2020, "resource_type": "Dataset", "keywords": [" ice "],
            "doi": "https://doi.org/10.5281/ZENODO.123", "license": "cc-by-4.0", "access": " Embargoed ",
            "embargo_until": "2030-01-01T02:00:00+02:00", "visibility": "PRIVATE",
            "temporal": {"start": " 2010 ", "end": "2011-02-03T04:05:06-01:00"}}"#;
        let record = parse(line);
        assert_eq!(record.id, "X-1");
        assert_eq!(record.title, "Ice");
        assert_eq!(record.creators[0].name, "A");
        assert_eq!(record.creators[0].orcid, "0000-0002-1694-233X");
        assert_eq!(record.keywords, ["ice"]);
        assert_eq!(record.doi, "10.5281/zenodo.123");
        assert_eq!(record.license, "CC-BY-4.0");
        assert_eq!(record.access, Access::Embargoed as i32);
        assert_eq!(record.embargo_until, "2030-01-01T00:00:00Z");
        assert_eq!(record.visibility, Visibility::Private as i32);
        let temporal = record.temporal.unwrap();
        assert_eq!(temporal.start, "2010");
        assert_eq!(temporal.end, "2011-02-03T05:05:06Z");
    }

    #[test]
    fn doi_is_bare_whatever_form_it_was_given_in() {
        for given in [
            "10.1234/abc",
            "doi:10.1234/abc",
            "DOI: 10.1234/ABC",
            "https://doi.org/10.1234/abc",
            "http://dx.doi.org/10.1234/abc",
            "HTTPS://DOI.ORG/10.1234/Abc",
        ] {
            let record = parse(&sea_ice_with("doi", given.into()));
            assert_eq!(record.doi, "10.1234/abc", "{given}");
        }
    }

    #[test]
    fn absent_visibility_and_updated_at_are_left_to_the_node() {
        let mut json: Value = serde_json::from_str(SEA_ICE).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("visibility");
        object.remove("updated_at");
        let record = parse(&json.to_string());
        assert_eq!(record.visibility, Visibility::Unspecified as i32);
        assert_eq!(record.updated_at, "");
    }

    #[test]
    fn null_counts_as_absent() {
        let record = parse(&sea_ice_with("doi", Value::Null));
        assert_eq!(record.doi, "");
        let record = parse(&sea_ice_with("keywords", Value::Null));
        assert!(record.keywords.is_empty());
    }

    #[test]
    fn an_empty_temporal_object_is_no_coverage() {
        let record = parse(&sea_ice_with("temporal", serde_json::json!({})));
        assert_eq!(record.temporal, None);
        let record = parse(&sea_ice_with(
            "temporal",
            serde_json::json!({"end": "2020"}),
        ));
        assert_eq!(record.temporal.unwrap().start, "");
    }

    #[test]
    fn an_unknown_enum_name_is_refused() {
        let line = sea_ice_with("access", "free".into());
        assert_rejected(
            parse_json_line(&line),
            "access",
            "`free` is not one of open, registered",
        );
        let line = sea_ice_with("visibility", "everyone".into());
        assert_rejected(
            parse_json_line(&line),
            "visibility",
            "`everyone` is not one of public",
        );
    }

    #[test]
    fn an_unparsable_date_names_its_field_on_import() {
        let line = sea_ice_with("temporal", serde_json::json!({"start": "spring 2010"}));
        assert_rejected(
            parse_json_line(&line),
            "temporal.start",
            "`spring 2010` is not a date",
        );
        let line = sea_ice_with("updated_at", "yesterday".into());
        assert_rejected(parse_json_line(&line), "updated_at", "is not a date");
    }

    #[test]
    fn the_node_export_fields_are_read_back() {
        let line = sea_ice_with("origin", "node-a".into());
        let mut json: Value = serde_json::from_str(&line).unwrap();
        json["version"] = 7.into();
        let record = parse(&json.to_string());
        assert_eq!((record.origin.as_str(), record.version), ("node-a", 7));

        let tombstone =
            parse(r#"{"origin": "node-a", "id": "PDC-1", "version": 3, "deleted": true}"#);
        assert!(tombstone.deleted);
        assert_eq!(tombstone.version, 3);
    }

    // --- Errors of the JSON itself.

    #[test]
    fn unknown_top_level_field_is_named() {
        let line = sea_ice_with("colour", "blue".into());
        assert_rejected(parse_json_line(&line), "colour", "unknown field");
        // The reason lists what is known, to spot a misspelling.
        let line = sea_ice_with("licence", "MIT".into());
        assert_rejected(parse_json_line(&line), "licence", "`license`");
    }

    #[test]
    fn unknown_nested_fields_are_named_with_their_path() {
        let creators = serde_json::json!([{"name": "A"}, {"name": "B", "email": "b@example.org"}]);
        let line = sea_ice_with("creators", creators);
        assert_rejected(parse_json_line(&line), "creators[1].email", "unknown field");

        let spatial = serde_json::json!([{"west": 1.0, "south": 2.0, "east": 3.0, "north": 4.0, "crs": "EPSG:4326"}]);
        assert_rejected(
            parse_json_line(&sea_ice_with("spatial", spatial)),
            "spatial[0].crs",
            "unknown field",
        );
        let temporal = serde_json::json!({"start": "2010", "until": "2011"});
        assert_rejected(
            parse_json_line(&sea_ice_with("temporal", temporal)),
            "temporal.until",
            "unknown field",
        );
    }

    #[test]
    fn a_missing_box_side_is_named() {
        let spatial = serde_json::json!([{"west": 1.0, "south": 2.0, "east": 3.0}]);
        assert_rejected(
            parse_json_line(&sea_ice_with("spatial", spatial)),
            "spatial[0].north",
            "is required",
        );
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let line = sea_ice_with("publication_year", "2021".into());
        assert_rejected(parse_json_line(&line), "publication_year", "invalid type");
        let line = sea_ice_with("keywords", serde_json::json!(["ice", 3]));
        assert_rejected(parse_json_line(&line), "keywords[1]", "invalid type");
        let line = sea_ice_with("size_bytes", (-1).into());
        assert_rejected(parse_json_line(&line), "size_bytes", "invalid value");
    }

    #[test]
    fn a_repeated_field_is_named() {
        let line = r#"{"id": "A", "title": "One", "title": "Two"}"#;
        assert_rejected(parse_json_line(line), "title", "more than once");
    }

    #[test]
    fn a_line_that_is_not_an_object_is_refused() {
        // serde would take a struct's fields in order from an array.
        assert_rejected(
            parse_json_line(r#"["node-a", "X-1"]"#),
            "json",
            "expected a JSON object",
        );
        assert_rejected(parse_json_line("\"id\""), "json", "expected a JSON object");
        let line = sea_ice_with("creators", serde_json::json!([["Li", "PRI"]]));
        assert_rejected(
            parse_json_line(&line),
            "creators[0]",
            "expected a JSON object",
        );
        let line = sea_ice_with("spatial", serde_json::json!([[1.0, 2.0, 3.0, 4.0]]));
        assert_rejected(
            parse_json_line(&line),
            "spatial[0]",
            "expected a JSON object",
        );
        let line = sea_ice_with("temporal", serde_json::json!(["2010", "2011"]));
        assert_rejected(parse_json_line(&line), "temporal", "expected a JSON object");
    }

    #[test]
    fn json_syntax_errors_give_the_column() {
        let error = parse_json_line(r#"{"id": "A", "title" "B"}"#).unwrap_err();
        assert_eq!(error.field, "json");
        assert_eq!(error.reason, "expected `:` at column 21");
        assert_rejected(
            parse_json_line(r#"{"id": "A""#),
            "json",
            "EOF while parsing an object at column 10",
        );
        assert_rejected(parse_json_line(""), "json", "column 0");
        assert_rejected(
            parse_json_line(&format!("{SEA_ICE} {{}}")),
            "json",
            "trailing characters",
        );
    }

    #[test]
    fn an_over_long_line_is_refused_before_parsing() {
        // Valid JSON, only too long: the size is the reason, nothing else.
        let padding = " ".repeat(MAX_LINE_BYTES);
        let line = format!("{SEA_ICE}{padding}");
        assert_rejected(parse_json_line(&line), "json", "at most 1048576");
        let fits = format!("{SEA_ICE}{}", " ".repeat(MAX_LINE_BYTES - SEA_ICE.len()));
        assert!(parse_json_line(&fits).is_ok());
    }

    #[test]
    fn error_display_is_field_then_reason() {
        let error = RecordError::new("creators[1].orcid", "is mistyped");
        assert_eq!(error.to_string(), "creators[1].orcid: is mistyped");
    }

    // --- The rules, one at a time.

    #[test]
    fn the_datacite_mandatory_properties_are_required() {
        type Clear = fn(&mut DatasetRecord);
        let cases: [(&str, Clear); 7] = [
            ("id", |r| r.id.clear()),
            ("title", |r| r.title.clear()),
            ("creators", |r| r.creators.clear()),
            ("creators[0].name", |r| r.creators[0].name.clear()),
            ("publisher", |r| r.publisher.clear()),
            ("publication_year", |r| r.publication_year = 0),
            ("resource_type", |r| r.resource_type.clear()),
        ];
        for (field, clear) in cases {
            let mut record = sea_ice();
            clear(&mut record);
            assert_invalid(&record, field, "is required");
        }
        // On import too, with the same field named.
        let line = sea_ice_with("publisher", "   ".into());
        assert_rejected(parse_json_line(&line), "publisher", "is required");
    }

    #[test]
    fn id_is_a_bounded_identifier_without_whitespace() {
        let mut record = sea_ice();
        record.id = "PDC 2021".into();
        assert_invalid(&record, "id", "whitespace");
        record.id = "PDC\u{7}".into();
        assert_invalid(&record, "id", "U+0007");
        record.id = "x".repeat(MAX_ID_BYTES + 1);
        assert_invalid(&record, "id", "at most 256");
        record.id = "x".repeat(MAX_ID_BYTES);
        assert!(validate(&record).is_ok());
        record.origin = "node a".into();
        assert_invalid(&record, "origin", "may hold only a-z");
    }

    #[test]
    fn text_is_bounded_trimmed_and_free_of_control_characters() {
        let mut record = sea_ice();
        record.title = "é".repeat(MAX_TITLE_CHARS);
        assert!(
            validate(&record).is_ok(),
            "the bound counts characters, not bytes"
        );
        record.title.push('é');
        assert_invalid(&record, "title", "at most 1000");
        record.title = " Ice".into();
        assert_invalid(&record, "title", "leading or trailing whitespace");
        record.title = "Ice\nsheet".into();
        assert_invalid(&record, "title", "control character U+000A");
        // ASCII text is read by bytes, other text by characters: the same
        // controls are found either way, and the same lengths counted.
        for (title, reason) in [
            ("Ice\u{7f}sheet".to_owned(), "control character U+007F"),
            ("Eis\u{85}décke".to_owned(), "control character U+0085"),
            ("Eisdecke\u{1b}é".to_owned(), "control character U+001B"),
            ("x".repeat(MAX_TITLE_CHARS + 1), "at most 1000"),
            (
                "Ice sheet\u{a0}".to_owned(),
                "leading or trailing whitespace",
            ),
        ] {
            record.title = title;
            assert_invalid(&record, "title", reason);
        }
        let mut record = sea_ice();
        record.keywords = vec!["ice".into(), "sea\u{0}ice".into()];
        assert_invalid(&record, "keywords[1]", "control character U+0000");
        record.keywords = vec!["ice".into(), String::new()];
        assert_invalid(&record, "keywords[1]", "is empty");

        let mut record = sea_ice();
        record.description = "line one\nline two\tand a tab".into();
        assert!(validate(&record).is_ok(), "a description may span lines");
        record.description = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
        assert_invalid(&record, "description", "at most 65536");

        let mut record = sea_ice();
        record.creators[0].affiliation = "a".repeat(MAX_NAME_CHARS + 1);
        assert_invalid(&record, "creators[0].affiliation", "at most 500");
        let mut record = sea_ice();
        record.project = "p\u{0}".into();
        assert_invalid(&record, "project", "U+0000");
    }

    #[test]
    fn lists_are_bounded_and_their_entries_checked() {
        let mut record = sea_ice();
        record.creators = vec![record.creators[0].clone(); MAX_CREATORS + 1];
        assert_invalid(&record, "creators", "at most 100");

        let mut record = sea_ice();
        record.keywords = vec!["ice".into(); MAX_KEYWORDS + 1];
        assert_invalid(&record, "keywords", "at most 200");
        record.keywords = vec!["ice".into(), String::new()];
        assert_invalid(&record, "keywords[1]", "is empty");
        record.keywords = vec!["k".repeat(MAX_TERM_CHARS + 1)];
        assert_invalid(&record, "keywords[0]", "at most 200 are allowed");

        let mut record = sea_ice();
        record.disciplines = vec!["earth".into(); MAX_DISCIPLINES + 1];
        assert_invalid(&record, "disciplines", "at most 50");
        let mut record = sea_ice();
        record.formats = vec!["NetCDF".into(), " CSV".into()];
        assert_invalid(&record, "formats[1]", "whitespace");
    }

    #[test]
    fn publication_year_has_four_digits() {
        let mut record = sea_ice();
        for year in [999, 10_000] {
            record.publication_year = year;
            assert_invalid(&record, "publication_year", "from 1000 to 9999");
        }
        for year in [1000, 9999] {
            record.publication_year = year;
            assert!(validate(&record).is_ok());
        }
    }

    #[test]
    fn orcid_has_its_shape_and_check_character() {
        let mut record = sea_ice();
        record.creators.push(Creator {
            name: "Carberry, Josiah".into(),
            affiliation: String::new(),
            orcid: "0000-0002-1694-233X".into(),
        });
        assert!(validate(&record).is_ok(), "X is a valid check character");
        record.creators[1].orcid = "0000-0002-1694-2330".into();
        assert_invalid(&record, "creators[1].orcid", "wrong check character");
        record.creators[1].orcid = "0000-0002-1825-0079".into(); // transposed digits
        assert_invalid(&record, "creators[1].orcid", "wrong check character");
        for shape in [
            "0000000218250097",
            "0000-0002-1825-009",
            "https://orcid.org/0000-0002-1825-0097",
            "0000-0002-1825-009x",
            "0000-000A-1825-0097",
        ] {
            record.creators[1].orcid = shape.into();
            assert_invalid(&record, "creators[1].orcid", "expected 0000-0000-0000-000X");
        }
    }

    /// Invisible format characters (Unicode category Cf) are refused in a
    /// new record's id and DOI, wherever they sit; visible letters of any
    /// script are not. A peer's record is held to `validate` alone.
    #[test]
    fn new_ids_and_dois_hold_no_invisible_format_characters() {
        let mut record = sea_ice();
        for id in [
            "PDC-2021-0412",
            "Ålesund/ｸ-1",
            "データ:1",
            "PDC\u{00E9}",
            // Joiners that spell, after a virama: Devanagari, Malayalam.
            "\u{0915}\u{094D}\u{200D}\u{0937}-1",
            "\u{0D28}\u{0D4D}\u{200C}\u{0D28}-1",
            // A non-joiner between letters that join: Persian, with and
            // without a mark (fatha) beside it.
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}-1",
            "\u{0645}\u{064E}\u{200C}\u{064E}\u{062E}-1",
            "\u{0646}\u{0627}\u{0645}\u{0647}\u{200C}\u{0627}-1",
        ] {
            record.id = id.into();
            assert!(check_new(&record).is_ok(), "{id}");
        }
        record.id = "PDC-2021-0412".into();
        for (field, value, hidden) in [
            ("id", "PDC-\u{200B}2021", "U+200B"),
            ("id", "\u{FEFF}PDC-2021", "U+FEFF"),
            ("id", "PDC-\u{202E}1202", "U+202E"),
            ("id", "PDC\u{2060}", "U+2060"),
            ("id", "PDC-\u{E0041}", "U+E0041"),
            // Joiners anywhere but after a virama and before a letter.
            ("id", "AB\u{200C}CD", "U+200C"),
            ("id", "A-\u{200D}1", "U+200D"),
            ("id", "\u{30C7}\u{200D}\u{30FC}\u{30BF}:1", "U+200D"),
            ("id", "\u{0414}\u{0410}\u{200C}\u{041D}\u{041D}-1", "U+200C"),
            ("id", "\u{00C6}\u{200D}\u{00F8}-1", "U+200D"),
            ("id", "PDC-e\u{0301}\u{200D}\u{00E9}", "U+200D"),
            ("id", "\u{0915}\u{200D}\u{0937}-1", "U+200D"),
            ("id", "\u{0915}\u{094D}\u{200D}", "U+200D"),
            ("id", "\u{0915}\u{094D}\u{200D}-1", "U+200D"),
            // A non-joiner after a letter that does not join on its left
            // (waw), at an end, before a letter that does not join on its
            // right, or a joiner in its place.
            ("id", "\u{0648}\u{200C}\u{062E}-1", "U+200C"),
            ("id", "\u{0645}\u{200C}", "U+200C"),
            ("id", "\u{0645}\u{200C}-1", "U+200C"),
            ("id", "\u{0645}\u{200C}A", "U+200C"),
            ("id", "\u{0645}\u{064E}\u{200C}\u{064E}", "U+200C"),
            ("id", "\u{0645}\u{200D}\u{062E}-1", "U+200D"),
            ("id", "\u{200D}\u{0915}", "U+200D"),
            ("doi", "10.1234/\u{0915}\u{094D}\u{200D}\u{0937}", "U+200D"),
            ("doi", "10.1234/pdc\u{00AD}2021", "U+00AD"),
            ("doi", "10.1234/pdc\u{200D}2021", "U+200D"),
        ] {
            let mut bad = record.clone();
            match field {
                "id" => bad.id = value.into(),
                _ => bad.doi = value.into(),
            }
            assert!(
                validate(&bad).is_ok(),
                "{value:?} is valid for a peer's record"
            );
            assert_rejected(check_new(&bad), field, hidden);
        }
        // A delete names a held record by its id, whatever it holds; its
        // DOI is still checked.
        let mut delete = record.clone();
        delete.deleted = true;
        delete.id = "PDC-\u{200B}2021".into();
        assert!(check_new(&delete).is_ok());
        delete.doi = "10.1234/pdc\u{00AD}2021".into();
        assert_rejected(check_new(&delete), "doi", "U+00AD");
    }

    #[test]
    fn doi_is_bare_lowercase_with_a_registrant_and_a_suffix() {
        let mut record = sea_ice();
        for good in ["10.1234/x", "10.12345.6/a/b;c(d)", "10.1000/中文"] {
            record.doi = good.into();
            assert!(validate(&record).is_ok(), "{good}");
        }
        for bad in [
            "11.1234/x",
            "10.123/x",
            "10.1234",
            "10.1234/",
            "10.12a4/x",
            "10..1234/x",
            "https://doi.org/10.1234/x",
        ] {
            record.doi = bad.into();
            assert_invalid(&record, "doi", "is not a DOI");
        }
        record.doi = "10.1234/a b".into();
        assert_invalid(&record, "doi", "whitespace");
        record.doi = "10.1234/ABC".into();
        assert_invalid(&record, "doi", "kept as `10.1234/abc`");
        // A DOI that is not one is refused on import too.
        assert_rejected(
            parse_json_line(&sea_ice_with("doi", "doi:1234/x".into())),
            "doi",
            "is not a DOI",
        );
    }

    #[test]
    fn landing_url_is_an_absolute_http_url() {
        let mut record = sea_ice();
        for good in [
            "https://data.example.org",
            "http://example.org:8080/a?b=c#d",
            "https://[2001:db8::1]:443/x",
            "HTTPS://例え.jp/データ",
        ] {
            record.landing_url = good.into();
            assert!(validate(&record).is_ok(), "{good}");
        }
        let cases = [
            ("ftp://example.org/x", "absolute http or https"),
            ("/pdc/2021-0412", "absolute http or https"),
            ("example.org/x", "absolute http or https"),
            ("https:///x", "has no host"),
            ("https://user:pw@example.org/", "user name or password"),
            ("https://example.org/a b", "whitespace"),
            ("https://exa_mple.org/", "not a host name"),
            ("https://example.org:http/", "not a port number"),
            ("https://example.org:70000/", "not a port number"),
        ];
        for (bad, reason) in cases {
            record.landing_url = bad.into();
            assert_invalid(&record, "landing_url", reason);
        }
    }

    #[test]
    fn license_is_one_spdx_identifier_or_a_license_ref() {
        let mut record = sea_ice();
        for good in [
            "MIT",
            "CC0-1.0",
            "Apache-2.0",
            "LicenseRef-controlled-access",
            "LicenseRef-v1.2",
        ] {
            record.license = good.into();
            assert!(validate(&record).is_ok(), "{good}");
        }
        record.license = "CC-BY-5.0".into();
        assert_invalid(&record, "license", "not an SPDX license identifier");
        record.license = "MIT+".into();
        assert_invalid(&record, "license", "not an SPDX license identifier");
        record.license = "mit".into();
        assert_invalid(&record, "license", "not an SPDX license identifier");
        record.license = "MIT OR Apache-2.0".into();
        assert_invalid(&record, "license", "expression");
        record.license = "LicenseRef-".into();
        assert_invalid(&record, "license", "after `LicenseRef-`");
        record.license = "LicenseRef-a_b".into();
        assert_invalid(&record, "license", "after `LicenseRef-`");
        // Import spells an id as the SPDX list does.
        assert_eq!(
            parse(&sea_ice_with("license", "apache-2.0".into())).license,
            "Apache-2.0"
        );
        assert_eq!(
            parse(&sea_ice_with("license", "licenseref-x".into())).license,
            "LicenseRef-x"
        );
    }

    #[test]
    fn embargo_until_goes_with_embargoed_access_only() {
        let mut record = parse(ICE_CORE);
        record.embargo_until.clear();
        assert_invalid(
            &record,
            "embargo_until",
            "required when access is embargoed",
        );
        let mut record = sea_ice();
        record.embargo_until = "2030-01-01".into();
        assert_invalid(
            &record,
            "embargo_until",
            "only allowed when access is embargoed (access is open)",
        );
        let mut record = parse(ICE_CORE);
        record.embargo_until = "next year".into();
        assert_invalid(&record, "embargo_until", "is not a date");
    }

    #[test]
    fn groups_go_with_groups_visibility_only() {
        let mut record = parse(GENOMES);
        record.groups.clear();
        assert_invalid(&record, "groups", "required when visibility is groups");
        let mut record = sea_ice();
        record.groups = vec!["biomed".into()];
        assert_invalid(
            &record,
            "groups",
            "only allowed when visibility is groups (visibility is public)",
        );
        let mut record = parse(GENOMES);
        for good in ["a", "0-lab", "biomed_consortium.eu"] {
            record.groups = vec!["ok".into(), good.into()];
            assert!(validate(&record).is_ok(), "{good}");
        }
        for bad in ["Biomed", "-lab", "_lab", "bio med", "bio/med", ""] {
            record.groups = vec!["ok".into(), bad.into()];
            assert_invalid(&record, "groups[1]", "not a group name");
        }
        record.groups = vec!["g".repeat(MAX_GROUP_BYTES + 1)];
        assert_invalid(&record, "groups[0]", "at most 64");
    }

    #[test]
    fn enum_values_must_be_known() {
        let mut record = sea_ice();
        record.access = 9;
        assert_invalid(&record, "access", "9 is not a known access value");
        let mut record = sea_ice();
        record.visibility = -1;
        assert_invalid(&record, "visibility", "-1 is not a known visibility value");
    }

    #[test]
    fn boxes_are_wgs84_degrees_with_south_below_north() {
        let mut record = sea_ice();
        let bbox = |west, south, east, north| BoundingBox {
            west,
            south,
            east,
            north,
        };
        record.spatial = vec![
            bbox(-180.0, -90.0, 180.0, 90.0),
            bbox(170.0, -10.0, -170.0, 10.0),
        ];
        assert!(
            validate(&record).is_ok(),
            "west > east crosses the antimeridian"
        );
        let cases = [
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(180.5, 0.0, 1.0, 1.0),
                "spatial[1].west",
                "outside [-180, 180]",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(0.0, -91.0, 1.0, 1.0),
                "spatial[1].south",
                "outside [-90, 90]",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(0.0, 0.0, -181.0, 1.0),
                "spatial[1].east",
                "outside [-180, 180]",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(0.0, 0.0, 1.0, 90.1),
                "spatial[1].north",
                "outside [-90, 90]",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(f64::NAN, 0.0, 1.0, 1.0),
                "spatial[1].west",
                "not a finite number",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(0.0, f64::INFINITY, 1.0, 1.0),
                "spatial[1].south",
                "not a finite number",
            ),
            (
                bbox(0.0, 0.0, 0.0, 0.0),
                bbox(0.0, 10.0, 1.0, 5.0),
                "spatial[1].south",
                "south edge 10 lies north of the north edge 5",
            ),
        ];
        for (first, second, field, reason) in cases {
            record.spatial = vec![first, second];
            assert_invalid(&record, field, reason);
        }
        record.spatial = vec![bbox(0.0, 0.0, 1.0, 1.0); MAX_BOXES + 1];
        assert_invalid(&record, "spatial", "at most 100");
    }

    #[test]
    fn temporal_start_is_not_after_end_comparing_spans() {
        let mut record = sea_ice();
        let coverage = |start: &str, end: &str| {
            Some(TemporalCoverage {
                start: start.into(),
                end: end.into(),
            })
        };
        for (start, end) in [
            ("2018", "2018"),
            ("2018-06-01", "2018"),
            ("2018", "2018-01-01"),
            ("2018-12-31T23:59:59Z", "2018"),
            ("", "2018"),
            ("2018", ""),
        ] {
            record.temporal = coverage(start, end);
            assert!(validate(&record).is_ok(), "{start}..{end}");
        }
        for (start, end) in [
            ("2019", "2018"),
            ("2019-01-01", "2018"),
            ("2019-01-01T00:00:00Z", "2018-12-31"),
        ] {
            record.temporal = coverage(start, end);
            assert_invalid(&record, "temporal", "after it ends");
        }
        record.temporal = coverage("", "");
        assert_invalid(&record, "temporal", "neither start nor end");
        record.temporal = coverage("2018-02-30", "");
        assert_invalid(&record, "temporal.start", "is not a date");
        record.temporal = coverage("", "2018-01-01T01:00:00+01:00");
        assert_invalid(&record, "temporal.end", "write `2018-01-01T00:00:00Z`");
        record.temporal = coverage(" 2018", "");
        assert_invalid(&record, "temporal.start", "write `2018`");
    }

    #[test]
    fn updated_at_is_a_canonical_date() {
        let mut record = sea_ice();
        record.updated_at = "2023-03-14T10:00:00+02:00".into();
        assert_invalid(&record, "updated_at", "write `2023-03-14T08:00:00Z`");
        record.updated_at = "14/03/2023".into();
        assert_invalid(&record, "updated_at", "is not a date");
    }

    #[test]
    fn a_tombstone_needs_only_origin_id_and_version() {
        let tombstone = DatasetRecord {
            origin: "node-a".into(),
            id: "PDC-2021-0412".into(),
            version: 4,
            deleted: true,
            ..Default::default()
        };
        assert!(validate(&tombstone).is_ok());
        assert_invalid(
            &DatasetRecord {
                origin: String::new(),
                ..tombstone.clone()
            },
            "origin",
            "tombstone",
        );
        assert_invalid(
            &DatasetRecord {
                version: 0,
                ..tombstone.clone()
            },
            "version",
            "tombstone",
        );
        assert_invalid(
            &DatasetRecord {
                id: String::new(),
                ..tombstone.clone()
            },
            "id",
            "is required",
        );
        // What it does carry must still be well-formed.
        assert_invalid(
            &DatasetRecord {
                doi: "nope".into(),
                ..tombstone.clone()
            },
            "doi",
            "is not a DOI",
        );
        // A live record needs the rest.
        assert_invalid(
            &DatasetRecord {
                deleted: false,
                ..tombstone
            },
            "title",
            "is required",
        );
    }

    // --- Record model v2 (docs/decisions/record-model-v2.md).

    fn rich() -> DatasetRecord {
        parse(&crate::test_support::rich_record_line(
            "BS-1",
            "Bering Strait moorings",
            "public",
        ))
    }

    /// The rich record's JSON with `field` replaced.
    fn rich_with(field: &str, value: Value) -> String {
        let line =
            crate::test_support::rich_record_line("BS-1", "Bering Strait moorings", "public");
        let mut json: Value = serde_json::from_str(&line).unwrap();
        json[field] = value;
        json.to_string()
    }

    #[test]
    fn v2_fields_parse_and_export_back() {
        let record = rich();
        assert_eq!(record.subjects.len(), 2);
        assert_eq!(record.subjects[0].scheme, "GCMD Science Keywords");
        assert!(record.subjects[0].value_uri.ends_with("699bd062"));
        assert_eq!(record.subjects[1].classification_code, "0105");
        assert_eq!(record.related_identifiers[0].relation_type, "IsCitedBy");
        assert_eq!(
            record.related_identifiers[0].resource_type_general,
            "JournalArticle"
        );
        let funder = &record.funding_references[0];
        assert_eq!(funder.funder_identifier_type, "ROR");
        assert_eq!(funder.award_number, "22H05201");
        assert_eq!(funder.award_title, "Arctic Challenge for Sustainability");
        assert_eq!(record.funding_references[1].award_title, "");
        assert_eq!(
            record.geo_points,
            [GeoPoint {
                longitude: -168.95,
                latitude: 65.78
            }]
        );
        assert_eq!(record.geo_polygons[0].points.len(), 5);
        assert_eq!(record.geo_places, ["Bering Strait"]);
        assert_eq!(record.dates[1].date, "2024-01-01/2026-12-31");
        assert_eq!(record.dates[2].information, "Instrument recalibration");
        assert_eq!(record.rights.len(), 2);
        assert_eq!(
            record.alternate_identifiers[0].identifier_type,
            "ADS accession"
        );
        assert_eq!(record.dataset_version, "2.1");
        assert_eq!(record.language, "en-US");
        let line = to_json(&record).to_string();
        assert_eq!(parse_json_line(&line), Ok(record));
    }

    #[test]
    fn v2_import_canonicalises_terms_dates_and_derived_fields() {
        let mut json: Value = serde_json::from_str(&rich_with(
            "related_identifiers",
            serde_json::json!([{"identifier": "10.1/x", "identifier_type": "doi", "relation_type": " iscitedby "}]),
        ))
        .unwrap();
        json["dates"] = serde_json::json!([
            {"date": "2020-03-04T10:11:12+01:00/2021", "date_type": "valid"}
        ]);
        json["funding_references"] = serde_json::json!([{"funder_name": "F", "funder_identifier": "x", "funder_identifier_type": "crossref funder id"}]);
        // No license given: the rights statement names one.
        json.as_object_mut().unwrap().remove("license");
        // The discipline an FOS subject names is added.
        json["disciplines"] = serde_json::json!([]);
        let record = parse(&json.to_string());
        let related = &record.related_identifiers[0];
        assert_eq!(
            (
                related.identifier_type.as_str(),
                related.relation_type.as_str()
            ),
            ("DOI", "IsCitedBy")
        );
        assert_eq!(record.dates[0].date_type, "Valid");
        assert_eq!(record.dates[0].date, "2020-03-04T09:11:12Z/2021");
        assert_eq!(
            record.funding_references[0].funder_identifier_type,
            "Crossref Funder ID"
        );
        assert_eq!(record.license, "CC-BY-4.0");
        assert_eq!(
            record.disciplines,
            ["Earth and related environmental sciences"]
        );
    }

    #[test]
    fn v2_lists_are_bounded_naming_the_field() {
        let subject = serde_json::json!({"value": "v", "scheme": "S"});
        let point = serde_json::json!({"longitude": 1.0, "latitude": 2.0});
        let ring = serde_json::json!({"points": [point, {"longitude": 2.0, "latitude": 2.0}, {"longitude": 2.0, "latitude": 3.0}, point]});
        let cases: [(&str, Value, usize); 9] = [
            ("subjects", subject, MAX_SUBJECTS),
            (
                "related_identifiers",
                serde_json::json!({"identifier": "10.1/x", "identifier_type": "DOI", "relation_type": "Cites"}),
                MAX_RELATED_IDENTIFIERS,
            ),
            (
                "funding_references",
                serde_json::json!({"funder_name": "F"}),
                MAX_FUNDING_REFERENCES,
            ),
            ("geo_points", point.clone(), MAX_GEO_POINTS),
            ("geo_polygons", ring, MAX_GEO_POLYGONS),
            ("geo_places", Value::from("Bering Strait"), MAX_GEO_PLACES),
            (
                "dates",
                serde_json::json!({"date": "2020", "date_type": "Created"}),
                MAX_DATES,
            ),
            (
                "rights",
                serde_json::json!({"statement": "Acknowledge us."}),
                MAX_RIGHTS,
            ),
            (
                "alternate_identifiers",
                serde_json::json!({"identifier": "A-1", "identifier_type": "Local"}),
                MAX_ALTERNATE_IDENTIFIERS,
            ),
        ];
        for (field, entry, max) in cases {
            let at_max = rich_with(field, Value::Array(vec![entry.clone(); max]));
            parse_json_line(&at_max).unwrap_or_else(|e| panic!("{field} at its bound: {e}"));
            let over = rich_with(field, Value::Array(vec![entry; max + 1]));
            assert_rejected(
                parse_json_line(&over),
                field,
                &format!("has {} entries; at most {max} are allowed", max + 1),
            );
        }
    }

    #[test]
    fn v2_strings_are_bounded_and_checked_naming_the_field() {
        let long = |n: usize| "x".repeat(n);
        let cases: Vec<(&str, Value, &str, String)> = vec![
            (
                "subjects",
                serde_json::json!([{"value": long(MAX_SUBJECT_CHARS + 1), "scheme": "S"}]),
                "subjects[0].value",
                format!("at most {MAX_SUBJECT_CHARS}"),
            ),
            (
                "subjects",
                serde_json::json!([{"value": "v", "scheme_uri": "not a uri"}]),
                "subjects[0].scheme_uri",
                "whitespace".into(),
            ),
            (
                "subjects",
                serde_json::json!([{"value": "v", "value_uri": format!("https://{}", long(MAX_URI_BYTES))}]),
                "subjects[0].value_uri",
                format!("at most {MAX_URI_BYTES}"),
            ),
            (
                "subjects",
                serde_json::json!([{"value": "v"}]),
                "subjects[0]",
                "belongs in `keywords`".into(),
            ),
            (
                "related_identifiers",
                serde_json::json!([{"identifier": long(MAX_IDENTIFIER_BYTES + 1), "identifier_type": "DOI", "relation_type": "Cites"}]),
                "related_identifiers[0].identifier",
                format!("at most {MAX_IDENTIFIER_BYTES}"),
            ),
            (
                "related_identifiers",
                serde_json::json!([{"identifier": "x", "identifier_type": "DOI", "relation_type": "IsRelatedTo"}]),
                "related_identifiers[0].relation_type",
                "not one of DataCite's terms".into(),
            ),
            (
                "related_identifiers",
                serde_json::json!([{"identifier": "x", "identifier_type": "DOI"}]),
                "related_identifiers[0].relation_type",
                "is required".into(),
            ),
            (
                "funding_references",
                serde_json::json!([{"funder_name": "F", "award_title": long(MAX_TITLE_CHARS + 1)}]),
                "funding_references[0].award_title",
                format!("at most {MAX_TITLE_CHARS}"),
            ),
            (
                "funding_references",
                serde_json::json!([{"award_number": "1"}]),
                "funding_references[0].funder_name",
                "is required".into(),
            ),
            (
                "funding_references",
                serde_json::json!([{"funder_name": "F", "funder_identifier": "x"}]),
                "funding_references[0].funder_identifier_type",
                "is required".into(),
            ),
            (
                "geo_places",
                serde_json::json!([long(MAX_NAME_CHARS + 1)]),
                "geo_places[0]",
                format!("at most {MAX_NAME_CHARS}"),
            ),
            (
                "dates",
                serde_json::json!([{"date": "2020", "date_type": "Created", "information": long(MAX_NAME_CHARS + 1)}]),
                "dates[0].information",
                format!("at most {MAX_NAME_CHARS}"),
            ),
            (
                "dates",
                serde_json::json!([{"date": "2020", "date_type": "Published"}]),
                "dates[0].date_type",
                "not one of DataCite's terms".into(),
            ),
            (
                "dates",
                serde_json::json!([{"date": "next year", "date_type": "Created"}]),
                "dates[0].date",
                "not a date".into(),
            ),
            (
                "rights",
                serde_json::json!([{"statement": long(MAX_RIGHTS_CHARS + 1)}]),
                "rights[0].statement",
                format!("at most {MAX_RIGHTS_CHARS}"),
            ),
            (
                "rights",
                serde_json::json!([{"uri": "info:eu-repo/semantics/openAccess"}]),
                "rights[0].uri",
                "give it as `access`".into(),
            ),
            (
                "alternate_identifiers",
                serde_json::json!([{"identifier": "A-1"}]),
                "alternate_identifiers[0].identifier_type",
                "is required".into(),
            ),
            (
                "alternate_identifiers",
                serde_json::json!([{"identifier": "https://ads.example.org/dataset/A-001", "identifier_type": "URL"}]),
                "alternate_identifiers[0]",
                "landing page".into(),
            ),
            (
                "alternate_identifiers",
                serde_json::json!([{"identifier": "polar/A-1", "identifier_type": "meridian"}]),
                "alternate_identifiers[0].identifier_type",
                "ORIGIN/ID".into(),
            ),
            (
                "dataset_version",
                Value::from(long(MAX_VERSION_CHARS + 1)),
                "dataset_version",
                format!("at most {MAX_VERSION_CHARS}"),
            ),
            (
                "language",
                Value::from("english language"),
                "language",
                "not a language tag".into(),
            ),
            (
                "language",
                Value::from(format!("en-{}", ["abcdefgh"; 5].join("-"))),
                "language",
                format!("at most {MAX_LANGUAGE_BYTES}"),
            ),
        ];
        for (field, value, path, reason) in cases {
            assert_rejected(parse_json_line(&rich_with(field, value)), path, &reason);
        }
    }

    #[test]
    fn polygons_are_closed_rings_of_valid_points() {
        let p = |longitude: f64, latitude: f64| serde_json::json!({"longitude": longitude, "latitude": latitude});
        let polygon = |points: Vec<Value>| serde_json::json!([{"points": points}]);
        let open = polygon(vec![p(0.0, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)]);
        assert_rejected(
            parse_json_line(&rich_with("geo_polygons", open)),
            "geo_polygons[0].points",
            "is not closed",
        );
        let triangle = polygon(vec![p(0.0, 0.0), p(1.0, 0.0), p(0.0, 0.0)]);
        assert_rejected(
            parse_json_line(&rich_with("geo_polygons", triangle)),
            "geo_polygons[0].points",
            "at least 4",
        );
        let north_of_the_pole = polygon(vec![p(0.0, 0.0), p(1.0, 91.0), p(1.0, 1.0), p(0.0, 0.0)]);
        assert_rejected(
            parse_json_line(&rich_with("geo_polygons", north_of_the_pole)),
            "geo_polygons[0].points[1].latitude",
            "outside [-90, 90]",
        );
        let too_long = polygon(
            (0..MAX_POLYGON_POINTS)
                .map(|i| p(i as f64 / 10.0, 0.0))
                .chain([p(0.0, 0.0)])
                .collect(),
        );
        assert_rejected(
            parse_json_line(&rich_with("geo_polygons", too_long)),
            "geo_polygons[0].points",
            &format!("at most {MAX_POLYGON_POINTS}"),
        );
        let missing = polygon(vec![serde_json::json!({"longitude": 1.0})]);
        assert_rejected(
            parse_json_line(&rich_with("geo_polygons", missing)),
            "geo_polygons[0].points[0].latitude",
            "is required",
        );
        assert_rejected(
            parse_json_line(&rich_with("geo_points", serde_json::json!([p(181.0, 0.0)]))),
            "geo_points[0].longitude",
            "outside [-180, 180]",
        );
        let mut record = rich();
        record.geo_points[0].latitude = f64::NAN;
        assert_invalid(&record, "geo_points[0].latitude", "not a finite number");
    }

    #[test]
    fn rights_subjects_and_dates_keep_to_the_fields_export_reads_them_into() {
        // A license a statement names must be the license.
        let mut record = rich();
        record.license.clear();
        assert_invalid(&record, "license", "rights[0] names `CC-BY-4.0`");
        // The statement that stands for the license alone is the license.
        let mut record = rich();
        record.rights.push(license_rights("CC-BY-4.0"));
        assert_invalid(&record, "rights[2]", "give it as `license`");
        // A discipline of the node's own scheme is a discipline.
        let mut record = rich();
        record.subjects[0].scheme = DISCIPLINE_SCHEME.into();
        record.subjects[0].scheme_uri.clear();
        record.subjects[0].value_uri.clear();
        assert_invalid(&record, "subjects[0]", "give it in `disciplines`");
        // An FOS subject's discipline is listed.
        let mut record = rich();
        record.disciplines.clear();
        assert_invalid(&record, "disciplines", "which subjects[1] names");
        // A plain Updated or Collected date has its own field.
        let mut record = rich();
        record.updated_at.clear();
        record.dates.push(TypedDate {
            date: "2024".into(),
            date_type: "Updated".into(),
            information: String::new(),
        });
        assert_invalid(&record, "dates[3]", "give it as `updated_at`");
        record.dates[3].information = "metadata only".into();
        assert_eq!(validate(&record), Ok(()));
        // An alternate URL other than the landing page stays.
        let mut record = rich();
        record.alternate_identifiers.push(AlternateIdentifier {
            identifier: "https://mirror.example.org/A-001".into(),
            identifier_type: "URL".into(),
        });
        assert_eq!(validate(&record), Ok(()));
        record.landing_url.clear();
        assert_invalid(&record, "alternate_identifiers[1]", "landing page");
    }

    #[test]
    fn boxes_of_a_record_cover_points_and_polygons_across_the_antimeridian() {
        let record = rich();
        let boxes = record_boxes(&record);
        assert_eq!(
            boxes,
            [
                BoundingBox {
                    west: -168.95,
                    south: 65.78,
                    east: -168.95,
                    north: 65.78
                },
                // 175.5°E to 175.5°W: 9° wide across the antimeridian, not 351°.
                BoundingBox {
                    west: 175.5,
                    south: 60.0,
                    east: -175.5,
                    north: 63.25
                },
            ]
        );
        let square = |west: f64, east: f64| {
            [
                (west, 0.0),
                (east, 0.0),
                (east, 1.0),
                (west, 1.0),
                (west, 0.0),
            ]
            .map(|(longitude, latitude)| GeoPoint {
                longitude,
                latitude,
            })
        };
        let bounds = polygon_bounds(&square(-10.0, 20.0)).unwrap();
        assert_eq!((bounds.west, bounds.east), (-10.0, 20.0));
        assert_eq!(polygon_bounds(&[]), None);
    }

    /// DatasetRecord as a node before record model v2 knows it (fields 1-26).
    #[derive(Clone, PartialEq, prost::Message)]
    struct RecordV1 {
        #[prost(string, tag = "1")]
        origin: String,
        #[prost(string, tag = "2")]
        id: String,
        #[prost(uint64, tag = "3")]
        version: u64,
        #[prost(string, tag = "4")]
        title: String,
        #[prost(string, tag = "14")]
        license: String,
        #[prost(message, repeated, tag = "19")]
        spatial: Vec<BoundingBox>,
        #[prost(string, tag = "25")]
        updated_at: String,
    }

    #[test]
    fn an_older_reader_skips_v2_fields_and_v1_payloads_read_as_before() {
        use prost::Message;
        let record = rich();
        let payload = record.encode_to_vec();
        let old = RecordV1::decode(payload.as_slice()).unwrap();
        assert_eq!(
            (old.id.as_str(), old.title.as_str(), old.license.as_str()),
            (record.id.as_str(), record.title.as_str(), "CC-BY-4.0")
        );
        assert_eq!(old.updated_at, record.updated_at);
        // A payload written before v2 reads with every v2 field empty.
        let v1 = RecordV1 {
            id: "PDC-1".into(),
            title: "Ice".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let read = DatasetRecord::decode(v1.as_slice()).unwrap();
        assert_eq!(read.id, "PDC-1");
        assert_eq!(
            read,
            DatasetRecord {
                id: "PDC-1".into(),
                title: "Ice".into(),
                ..Default::default()
            }
        );
    }

    // --- Names of the enums.

    #[test]
    fn enum_names_read_back() {
        for (value, name) in (1..=4).zip(ACCESS_NAMES) {
            assert_eq!(access_name(value), name);
            assert_eq!(parse_access(name).map(|a| a as i32), Some(value));
            assert_eq!(
                parse_access(&name.to_uppercase()).map(|a| a as i32),
                Some(value)
            );
        }
        for (value, name) in (1..=4).zip(VISIBILITY_NAMES) {
            assert_eq!(visibility_name(value), name);
            assert_eq!(parse_visibility(name).map(|v| v as i32), Some(value));
        }
        assert_eq!(access_name(0), "unspecified");
        assert_eq!(access_name(42), "unspecified");
        assert_eq!(visibility_name(-3), "unspecified");
        assert_eq!(parse_access("unspecified"), None);
        assert_eq!(parse_visibility("everyone"), None);
    }

    // --- Export.

    #[test]
    fn export_leaves_out_defaults_and_writes_enums_as_text() {
        let record = DatasetRecord {
            id: "A-1".into(),
            title: "T".into(),
            creators: vec![Creator {
                name: "N".into(),
                ..Default::default()
            }],
            publisher: "P".into(),
            publication_year: 2020,
            resource_type: "Dataset".into(),
            access: Access::Registered as i32,
            ..Default::default()
        };
        let json = to_json(&record);
        assert_eq!(
            json,
            serde_json::json!({
                "id": "A-1", "title": "T", "creators": [{"name": "N"}], "publisher": "P",
                "publication_year": 2020, "resource_type": "Dataset", "access": "registered"
            })
        );
        let tombstone = DatasetRecord {
            origin: "node-a".into(),
            id: "A-1".into(),
            version: 2,
            deleted: true,
            ..Default::default()
        };
        assert_eq!(
            to_json(&tombstone),
            serde_json::json!({"origin": "node-a", "id": "A-1", "version": 2, "deleted": true})
        );
        let json = to_json(&parse(GENOMES));
        assert_eq!(json["visibility"], "groups");
        assert_eq!(json["access"], "restricted");
        assert_eq!(json["groups"], serde_json::json!(["biomed-consortium"]));
    }

    #[test]
    fn example_holdings_round_trip_through_export() {
        for line in [SEA_ICE, ICE_CORE, GENOMES] {
            let record = parse(line);
            assert_eq!(parse(&to_json(&record).to_string()), record);
        }
    }

    // --- Properties.

    fn text_of(max: usize) -> impl Strategy<Value = String> {
        let pattern =
            format!("[A-Za-z0-9éß冰]([A-Za-z0-9 ,.()/éß冰-]{{0,{max}}}[A-Za-z0-9)éß冰])?");
        proptest::string::string_regex(&pattern).unwrap()
    }

    fn maybe(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), strategy]
    }

    fn a_date() -> impl Strategy<Value = String> {
        prop_oneof![
            (1000u32..=9999).prop_map(|y| format!("{y:04}")),
            (1000u32..=9999, 1u8..=12, 1u8..=28)
                .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
            (
                1970u32..=2100,
                1u8..=12,
                1u8..=28,
                0u8..24,
                0u8..60,
                0u8..60
            )
                .prop_map(|(y, mo, d, h, mi, s)| format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"
                )),
        ]
    }

    fn an_orcid() -> impl Strategy<Value = String> {
        proptest::array::uniform15(0u8..10).prop_map(|digits| {
            let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let check = char::from(orcid_check_character(&digits));
            format!(
                "{}-{}-{}-{}{check}",
                &text[0..4],
                &text[4..8],
                &text[8..12],
                &text[12..15]
            )
        })
    }

    fn a_creator() -> impl Strategy<Value = Creator> {
        (text_of(30), maybe(text_of(30)), maybe(an_orcid())).prop_map(
            |(name, affiliation, orcid)| Creator {
                name,
                affiliation,
                orcid,
            },
        )
    }

    fn a_box() -> impl Strategy<Value = BoundingBox> {
        (
            -180.0f64..=180.0,
            -90.0f64..=90.0,
            -180.0f64..=180.0,
            -90.0f64..=90.0,
        )
            .prop_map(|(west, a, east, b)| BoundingBox {
                west,
                south: a.min(b),
                east,
                north: a.max(b),
            })
    }

    fn a_coverage() -> impl Strategy<Value = Option<TemporalCoverage>> {
        let coverage = (maybe(a_date()), maybe(a_date())).prop_filter_map("no bound", |(a, b)| {
            if a.is_empty() && b.is_empty() {
                return None;
            }
            // Order the two spans so that the start begins before the end ends.
            let swap = !a.is_empty()
                && !b.is_empty()
                && date::bounds(&a).unwrap().0 > date::bounds(&b).unwrap().1;
            let (start, end) = if swap { (b, a) } else { (a, b) };
            Some(TemporalCoverage { start, end })
        });
        prop::option::of(coverage)
    }

    prop_compose! {
        fn a_core()(
            id in "[A-Za-z0-9][A-Za-z0-9._:/-]{0,40}",
            title in text_of(80),
            description in maybe("[A-Za-z0-9]([A-Za-z0-9 .,;\n\t]{0,120}[A-Za-z0-9.])?"),
            creators in prop::collection::vec(a_creator(), 1..4),
            publisher in text_of(40),
            publication_year in MIN_PUBLICATION_YEAR..=MAX_PUBLICATION_YEAR,
            resource_type in text_of(20),
            keywords in prop::collection::vec(text_of(20), 0..5),
            disciplines in prop::collection::vec(text_of(10), 0..3),
            formats in prop::collection::vec(text_of(10), 0..3),
        ) -> DatasetRecord {
            DatasetRecord {
                id, title, description, creators, publisher, publication_year, resource_type,
                keywords, disciplines, formats, ..Default::default()
            }
        }
    }

    prop_compose! {
        fn a_valid_record()(
            core in a_core(),
            doi in maybe("10\\.[0-9]{4,6}(\\.[0-9]{1,3})?/[a-z0-9._;()/:-]{1,24}"),
            landing_url in maybe("https?://[a-z0-9]{1,10}\\.example\\.org(:[0-9]{1,4})?(/[a-zA-Z0-9._~%-]{0,8}){0,3}(\\?[a-z]=[0-9])?"),
            license in prop::sample::select(vec!["", "CC-BY-4.0", "CC0-1.0", "MIT", "ODbL-1.0", "LicenseRef-controlled-access"]),
            (access, embargo_until) in (0i32..=4, a_date()).prop_map(|(access, date)| {
                (access, if access == Access::Embargoed as i32 { date } else { String::new() })
            }),
            (visibility, groups) in (0i32..=4, prop::collection::vec("[a-z0-9][a-z0-9._-]{0,20}", 1..3)).prop_map(|(visibility, groups)| {
                (visibility, if visibility == Visibility::Groups as i32 { groups } else { Vec::new() })
            }),
            spatial in prop::collection::vec(a_box(), 0..3),
            temporal in a_coverage(),
            (size_bytes, file_count) in (any::<u64>(), any::<u64>()),
            project in maybe(text_of(30)),
            updated_at in maybe(a_date()),
            (origin, version, deleted) in (maybe("[a-z0-9][a-z0-9.-]{0,20}"), any::<u64>(), any::<bool>()),
        ) -> DatasetRecord {
            DatasetRecord {
                doi, landing_url, license: license.to_owned(), access, embargo_until, visibility, groups,
                spatial, temporal, size_bytes, file_count, project, updated_at,
                deleted: deleted && !origin.is_empty() && version > 0,
                origin, version,
                ..core
            }
        }
    }

    fn a_tombstone() -> impl Strategy<Value = DatasetRecord> {
        (
            "[a-z0-9][a-z0-9.-]{0,20}",
            "[A-Za-z0-9][A-Za-z0-9._:/-]{0,40}",
            1u64..,
        )
            .prop_map(|(origin, id, version)| DatasetRecord {
                origin,
                id,
                version,
                deleted: true,
                ..Default::default()
            })
    }

    proptest! {
        #[test]
        fn export_then_import_gives_back_the_record(
            record in prop_oneof![4 => a_valid_record(), 1 => a_tombstone()],
        ) {
            prop_assert_eq!(validate(&record), Ok(()));
            let line = to_json(&record).to_string();
            prop_assert!(!line.contains('\n'), "one record, one line");
            prop_assert_eq!(parse_json_line(&line), Ok(record));
        }

        #[test]
        fn import_never_panics_on_any_text(line in any::<String>()) {
            let _ = parse_json_line(&line);
        }

        #[test]
        fn import_never_panics_on_json_like_text(line in r#"[{}\[\]":,a-z0-9 .\\-]{0,200}"#) {
            let _ = parse_json_line(&line);
        }

        #[test]
        fn import_never_panics_on_damaged_records(
            record in a_valid_record(),
            at in any::<prop::sample::Index>(),
            insert in any::<char>(),
            cut in any::<bool>(),
        ) {
            let mut line = to_json(&record).to_string();
            let mut position = at.index(line.len() + 1);
            while !line.is_char_boundary(position) {
                position -= 1;
            }
            if cut {
                line.truncate(position);
            } else {
                line.insert(position, insert);
            }
            let _ = parse_json_line(&line);
        }
    }
}
