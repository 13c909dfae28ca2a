//! DataCite Metadata Schema 4 ⇄ the record model, in its two forms: the
//! XML kernel (`<resource xmlns="http://datacite.org/schema/kernel-4">`, as
//! `oai_datacite` carries it) and the JSON of the DataCite REST API (a
//! DOI's `attributes`). Both are read into [`Resource`], the properties the
//! model uses, and the record is made from that, so the two forms map
//! alike. The mapping, property by property, is in `docs/datacite.md`.

use serde_json::{json, Map, Value};

use super::normalise::{short, Notes, Shape};
use super::tree::Element;
use super::IdSource;
use crate::proto::{Access, BoundingBox, Creator, DatasetRecord};
use crate::record::{self, RecordError};

/// The DataCite kernel-4 namespace.
pub const NAMESPACE: &str = "http://datacite.org/schema/kernel-4";
/// Where its schema is published.
pub const SCHEMA_LOCATION: &str = "http://schema.datacite.org/meta/kernel-4/metadata.xsd";
/// Subject scheme the model's disciplines are written with.
pub const DISCIPLINE_SCHEME: &str = "meridian discipline";
/// Alternate identifier type of a record's `ORIGIN/ID`.
pub const MERIDIAN_ID_TYPE: &str = "meridian";

/// A creator as DataCite writes one.
#[derive(Debug, Default, Clone)]
pub struct Name {
    pub name: String,
    pub given: String,
    pub family: String,
    pub orcid: String,
    pub affiliations: Vec<String>,
}

/// A `rights` entry.
#[derive(Debug, Default, Clone)]
pub struct Rights {
    pub text: String,
    pub uri: String,
    pub identifier: String,
    pub scheme: String,
}

/// The DataCite properties the record model holds, as read, before
/// normalisation. Pairs are (text, type or scheme).
#[derive(Debug, Default, Clone)]
pub struct Resource {
    pub doi: String,
    pub url: String,
    pub creators: Vec<Name>,
    pub titles: Vec<(String, String)>,
    pub publisher: String,
    pub publication_year: String,
    pub resource_type: String,
    pub resource_type_general: String,
    pub subjects: Vec<(String, String)>,
    pub dates: Vec<(String, String)>,
    pub alternate_ids: Vec<(String, String)>,
    pub sizes: Vec<String>,
    pub formats: Vec<String>,
    pub rights: Vec<Rights>,
    pub descriptions: Vec<(String, String)>,
    /// west, south, east, north (a point has west = east, south = north).
    pub boxes: Vec<[String; 4]>,
}

// ---------------------------------------------------------------------------
// Reading.

/// Reads a kernel-4 (or kernel-3) `resource` element.
pub fn from_xml(resource: &Element) -> Resource {
    let text = |e: &Element| e.text.clone();
    let mut out = Resource::default();
    if let Some(identifier) = resource.child("identifier") {
        if identifier
            .attr("identifierType")
            .is_none_or(|t| t.eq_ignore_ascii_case("DOI"))
        {
            out.doi = text(identifier);
        }
    }
    out.creators = resource
        .list("creators", "creator")
        .map(|c| Name {
            name: c.child_text("creatorName").to_owned(),
            given: c.child_text("givenName").to_owned(),
            family: c.child_text("familyName").to_owned(),
            orcid: c
                .all("nameIdentifier")
                .find(|n| {
                    n.attr("nameIdentifierScheme")
                        .is_some_and(|s| s.eq_ignore_ascii_case("ORCID"))
                })
                .map(text)
                .unwrap_or_default(),
            affiliations: c.all("affiliation").map(text).collect(),
        })
        .collect();
    out.titles = resource
        .list("titles", "title")
        .map(|t| (text(t), t.attr("titleType").unwrap_or_default().to_owned()))
        .collect();
    out.publisher = resource.child_text("publisher").to_owned();
    out.publication_year = resource.child_text("publicationYear").to_owned();
    if let Some(kind) = resource.child("resourceType") {
        out.resource_type = text(kind);
        out.resource_type_general = kind
            .attr("resourceTypeGeneral")
            .unwrap_or_default()
            .to_owned();
    }
    out.subjects = resource
        .list("subjects", "subject")
        .map(|s| {
            (
                text(s),
                s.attr("subjectScheme").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.dates = resource
        .list("dates", "date")
        .map(|d| (text(d), d.attr("dateType").unwrap_or_default().to_owned()))
        .collect();
    out.alternate_ids = resource
        .list("alternateIdentifiers", "alternateIdentifier")
        .map(|a| {
            (
                text(a),
                a.attr("alternateIdentifierType")
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    out.sizes = resource.list("sizes", "size").map(text).collect();
    out.formats = resource.list("formats", "format").map(text).collect();
    out.rights = resource
        .list("rightsList", "rights")
        .map(|r| Rights {
            text: text(r),
            uri: r.attr("rightsURI").unwrap_or_default().to_owned(),
            identifier: r.attr("rightsIdentifier").unwrap_or_default().to_owned(),
            scheme: r
                .attr("rightsIdentifierScheme")
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    out.descriptions = resource
        .list("descriptions", "description")
        .map(|d| {
            (
                text(d),
                d.attr("descriptionType").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for location in resource.list("geoLocations", "geoLocation") {
        if let Some(b) = location.child("geoLocationBox") {
            out.boxes.push([
                b.child_text("westBoundLongitude").to_owned(),
                b.child_text("southBoundLatitude").to_owned(),
                b.child_text("eastBoundLongitude").to_owned(),
                b.child_text("northBoundLatitude").to_owned(),
            ]);
        }
        if let Some(p) = location.child("geoLocationPoint") {
            let (lon, lat) = (
                p.child_text("pointLongitude"),
                p.child_text("pointLatitude"),
            );
            out.boxes.push([
                lon.to_owned(),
                lat.to_owned(),
                lon.to_owned(),
                lat.to_owned(),
            ]);
        }
    }
    out
}

/// Reads the JSON of the DataCite REST API: a response (`{"data": {…}}`),
/// a DOI object (`{"id", "type", "attributes"}`) or its `attributes`.
pub fn from_json(value: &Value) -> Result<Resource, RecordError> {
    let mut value = value;
    if let Some(data) = value.get("data") {
        value = data;
    }
    if let Some(attributes) = value.get("attributes") {
        value = attributes;
    }
    let Value::Object(a) = value else {
        return Err(RecordError::new("json", "expected a DataCite JSON object"));
    };
    let s = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Object(o)) => o
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        }
    };
    let list = |key: &str| -> Vec<Value> {
        a.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let pairs = |key: &str, text: &str, kind: &str| -> Vec<(String, String)> {
        list(key)
            .iter()
            .map(|v| (s(v.get(text)), s(v.get(kind))))
            .collect()
    };
    let mut out = Resource {
        doi: s(a.get("doi")),
        url: s(a.get("url")),
        publisher: s(a.get("publisher")),
        publication_year: s(a.get("publicationYear")),
        titles: pairs("titles", "title", "titleType"),
        subjects: pairs("subjects", "subject", "subjectScheme"),
        dates: pairs("dates", "date", "dateType"),
        alternate_ids: pairs(
            "alternateIdentifiers",
            "alternateIdentifier",
            "alternateIdentifierType",
        ),
        descriptions: pairs("descriptions", "description", "descriptionType"),
        sizes: list("sizes").iter().map(|v| s(Some(v))).collect(),
        formats: list("formats").iter().map(|v| s(Some(v))).collect(),
        ..Default::default()
    };
    if let Some(types) = a.get("types") {
        out.resource_type = s(types.get("resourceType"));
        out.resource_type_general = s(types.get("resourceTypeGeneral"));
    }
    out.creators = list("creators")
        .iter()
        .map(|c| Name {
            name: s(c.get("name")),
            given: s(c.get("givenName")),
            family: s(c.get("familyName")),
            orcid: c
                .get("nameIdentifiers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|n| {
                    n.get("nameIdentifierScheme")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("ORCID"))
                })
                .map(|n| s(n.get("nameIdentifier")))
                .unwrap_or_default(),
            affiliations: c
                .get("affiliation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| s(Some(v)))
                .collect(),
        })
        .collect();
    out.rights = list("rightsList")
        .iter()
        .map(|r| Rights {
            text: s(r.get("rights")),
            uri: s(r.get("rightsUri")),
            identifier: s(r.get("rightsIdentifier")),
            scheme: s(r.get("rightsIdentifierScheme")),
        })
        .collect();
    for location in list("geoLocations") {
        if let Some(b) = location.get("geoLocationBox") {
            out.boxes.push([
                s(b.get("westBoundLongitude")),
                s(b.get("southBoundLatitude")),
                s(b.get("eastBoundLongitude")),
                s(b.get("northBoundLatitude")),
            ]);
        }
        if let Some(p) = location.get("geoLocationPoint") {
            let (lon, lat) = (s(p.get("pointLongitude")), s(p.get("pointLatitude")));
            out.boxes.push([lon.clone(), lat.clone(), lon, lat]);
        }
    }
    Ok(out)
}

/// The record a resource describes, normalised and validated; `id` says
/// where its id comes from.
pub fn to_record(
    resource: &Resource,
    id: &IdSource,
    notes: &mut Notes,
) -> Result<DatasetRecord, RecordError> {
    let mut record = DatasetRecord {
        doi: record::canonical_doi(&resource.doi),
        ..Default::default()
    };
    // Identifier: the rule is documented in docs/datacite.md.
    record.id = match id {
        IdSource::Given(id) => id.clone(),
        IdSource::FromMetadata => {
            let meridian = resource
                .alternate_ids
                .iter()
                .find(|(_, kind)| kind == MERIDIAN_ID_TYPE)
                .and_then(|(text, _)| text.trim().split_once('/'))
                .map(|(_, id)| id.to_owned());
            let other = resource
                .alternate_ids
                .iter()
                .find(|(text, kind)| kind != "URL" && !text.trim().is_empty())
                .map(|(text, _)| text.trim().to_owned());
            meridian
                .or_else(|| (!record.doi.is_empty()).then(|| record.doi.clone()))
                .or(other)
                .ok_or_else(|| {
                    RecordError::new(
                        "id",
                        "the resource has no DOI and no alternate identifier to take an id from",
                    )
                })?
        }
    };
    let title = resource
        .titles
        .iter()
        .find(|(_, kind)| kind.is_empty())
        .or(resource.titles.first());
    if let Some((title, _)) = title {
        record.title = notes.text("title", title, Shape::OneLine);
    }
    for (index, creator) in resource.creators.iter().enumerate() {
        let field = |name: &str| format!("creators[{index}].{name}");
        let mut name = notes.text(&field("name"), &creator.name, Shape::OneLine);
        if name.is_empty() {
            let family = notes.text(&field("name"), &creator.family, Shape::OneLine);
            let given = notes.text(&field("name"), &creator.given, Shape::OneLine);
            name = match (family.is_empty(), given.is_empty()) {
                (false, false) => format!("{family}, {given}"),
                (false, true) => family,
                _ => given,
            };
        }
        let affiliation = creator
            .affiliations
            .first()
            .map(|a| notes.text(&field("affiliation"), a, Shape::OneLine))
            .unwrap_or_default();
        record.creators.push(Creator {
            name,
            affiliation,
            orcid: record::canonical_orcid(creator.orcid.trim()),
        });
    }
    record.publisher = notes.text("publisher", &resource.publisher, Shape::OneLine);
    if !resource.publication_year.trim().is_empty() {
        record.publication_year = notes.year("publication_year", &resource.publication_year)?;
    }
    record.resource_type = notes.text("resource_type", &resource.resource_type, Shape::OneLine);
    if record.resource_type.is_empty() {
        record.resource_type = notes.text(
            "resource_type",
            &resource.resource_type_general,
            Shape::OneLine,
        );
    }
    for (subject, scheme) in &resource.subjects {
        let discipline = scheme.eq_ignore_ascii_case(DISCIPLINE_SCHEME)
            || scheme.to_ascii_lowercase().contains("fields of science")
            || scheme.eq_ignore_ascii_case("FOS");
        let (list, name) = if discipline {
            (&mut record.disciplines, "disciplines")
        } else {
            (&mut record.keywords, "keywords")
        };
        let subject = subject
            .trim()
            .strip_prefix("FOS: ")
            .filter(|_| discipline)
            .unwrap_or(subject);
        let term = notes.term(&format!("{name}[{}]", list.len()), subject);
        if !term.is_empty() && !list.contains(&term) {
            list.push(term);
        }
    }
    limit(
        &mut record.keywords,
        record::MAX_KEYWORDS,
        "keywords",
        notes,
    );
    limit(
        &mut record.disciplines,
        record::MAX_DISCIPLINES,
        "disciplines",
        notes,
    );
    for (text, kind) in &resource.alternate_ids {
        if kind.eq_ignore_ascii_case("URL") && record.landing_url.is_empty() {
            record.landing_url = text.trim().to_owned();
        }
    }
    if record.landing_url.is_empty() {
        record.landing_url = resource.url.trim().to_owned();
    }
    for size in &resource.sizes {
        read_size(size, &mut record, notes);
    }
    for (index, format) in resource.formats.iter().enumerate() {
        let term = notes.term(&format!("formats[{index}]"), format);
        if !term.is_empty() && !record.formats.contains(&term) {
            record.formats.push(term);
        }
    }
    limit(&mut record.formats, record::MAX_FORMATS, "formats", notes);
    for rights in &resource.rights {
        read_rights(rights, &mut record, notes);
    }
    let mut available = String::new();
    for (date, kind) in &resource.dates {
        match kind.as_str() {
            "Updated" if record.updated_at.is_empty() => {
                record.updated_at = notes.date("updated_at", date)?;
            }
            "Available" if available.is_empty() => {
                available = notes.date("embargo_until", date)?;
            }
            "Collected" if record.temporal.is_none() => {
                let (start, end) = date.split_once('/').unwrap_or((date, date));
                record.temporal = notes.date_range(start, end)?;
            }
            _ => {}
        }
    }
    if record.access == Access::Embargoed as i32 {
        record.embargo_until = available;
    }
    let abstract_ = resource
        .descriptions
        .iter()
        .find(|(_, kind)| kind == "Abstract")
        .or_else(|| {
            resource
                .descriptions
                .iter()
                .find(|(_, kind)| kind != "Other")
        });
    if let Some((text, _)) = abstract_ {
        record.description = notes.text("description", text, Shape::Paragraphs);
    }
    for (text, kind) in &resource.descriptions {
        if let Some(project) = text
            .trim()
            .strip_prefix("Project:")
            .filter(|_| kind == "Other")
        {
            record.project = notes.text("project", project, Shape::OneLine);
        }
    }
    for (index, edges) in resource.boxes.iter().enumerate() {
        let mut values = [0.0f64; 4];
        for (value, (text, side)) in values
            .iter_mut()
            .zip(edges.iter().zip(["west", "south", "east", "north"]))
        {
            *value = text.trim().parse().map_err(|_| {
                RecordError::new(
                    format!("spatial[{index}].{side}"),
                    format!("`{}` is not a number of degrees", short(text)),
                )
            })?;
        }
        let [west, south, east, north] = values;
        record.spatial.push(BoundingBox {
            west,
            south,
            east,
            north,
        });
    }
    record::validate(&record)?;
    Ok(record)
}

/// Keeps the first `max` entries of a list, noting what was dropped.
fn limit(list: &mut Vec<String>, max: usize, field: &str, notes: &mut Notes) {
    if list.len() > max {
        notes.note(field, format!("kept the first {max} of {}", list.len()));
        list.truncate(max);
    }
}

/// `N bytes`, `N files`, or a size with a decimal unit (`2.5 GB`).
fn read_size(size: &str, record: &mut DatasetRecord, notes: &mut Notes) {
    let size = size.trim();
    let Some((number, unit)) = size.split_once(char::is_whitespace) else {
        return;
    };
    let unit = unit.trim().to_ascii_lowercase();
    if unit == "files" || unit == "file" {
        if let Ok(n) = number.parse() {
            record.file_count = n;
        }
        return;
    }
    let factor: f64 = match unit.as_str() {
        "bytes" | "byte" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "pb" => 1e15,
        _ => return,
    };
    if factor == 1.0 {
        if let Ok(n) = number.parse() {
            record.size_bytes = n;
        }
        return;
    }
    if let Ok(n) = number.parse::<f64>() {
        if n.is_finite() && n >= 0.0 && n * factor < u64::MAX as f64 {
            record.size_bytes = (n * factor).round() as u64;
            notes.note(
                "size_bytes",
                format!("`{size}` read as {} bytes", record.size_bytes),
            );
        }
    }
}

/// A license (SPDX id, SPDX or Creative Commons URI) or an access right
/// (`info:eu-repo/semantics/…Access`).
fn read_rights(rights: &Rights, record: &mut DatasetRecord, notes: &mut Notes) {
    let uri = rights.uri.trim();
    let access = match uri.strip_prefix("info:eu-repo/semantics/") {
        Some("openAccess") => Some(Access::Open),
        Some("embargoedAccess") => Some(Access::Embargoed),
        Some("restrictedAccess") | Some("closedAccess") => Some(Access::Restricted),
        _ => None,
    };
    if let Some(access) = access {
        if record.access == Access::Unspecified as i32 {
            record.access = access as i32;
        }
        return;
    }
    if !record.license.is_empty() {
        return;
    }
    let candidates = [
        rights.identifier.trim().to_owned(),
        uri.strip_prefix("https://spdx.org/licenses/")
            .or_else(|| uri.strip_prefix("http://spdx.org/licenses/"))
            .map(|id| id.trim_end_matches(".html").to_owned())
            .unwrap_or_default(),
        creative_commons(uri).unwrap_or_default(),
        rights.text.trim().to_owned(),
    ];
    for candidate in candidates.iter().filter(|c| !c.is_empty()) {
        let license = record::canonical_license(candidate);
        if spdx::license_id(&license).is_some() {
            record.license = license;
            return;
        }
    }
    let shown = if rights.text.trim().is_empty() {
        uri
    } else {
        rights.text.trim()
    };
    if !shown.is_empty() {
        notes.note(
            "license",
            format!("`{}` is not an SPDX license; not kept", short(shown)),
        );
    }
}

/// The SPDX id of a Creative Commons license URI.
fn creative_commons(uri: &str) -> Option<String> {
    let rest = uri
        .split_once("creativecommons.org/")
        .map(|(_, rest)| rest.trim_end_matches('/'))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["publicdomain", "zero", version, ..] => Some(format!("CC0-{version}")),
        ["licenses", kind, version, ..] => {
            Some(format!("CC-{}-{version}", kind.to_ascii_uppercase()))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Writing.

/// DataCite's `resourceTypeGeneral` values (kernel 4.5).
pub const RESOURCE_TYPES: &[&str] = &[
    "Audiovisual",
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

/// The `resourceTypeGeneral` of a record's free `resource_type`: the
/// DataCite term it names (any case, spaces ignored), else Dataset.
pub fn resource_type_general(resource_type: &str) -> &'static str {
    let wanted: String = resource_type
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    RESOURCE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&wanted))
        .copied()
        .unwrap_or("Dataset")
}

/// The COAR / info:eu-repo access right of a record, or "".
pub fn access_uri(access: i32) -> &'static str {
    match Access::try_from(access) {
        Ok(Access::Open) => "info:eu-repo/semantics/openAccess",
        Ok(Access::Embargoed) => "info:eu-repo/semantics/embargoedAccess",
        Ok(Access::Registered) | Ok(Access::Restricted) => {
            "info:eu-repo/semantics/restrictedAccess"
        }
        _ => "",
    }
}

/// The record as DataCite properties (the inverse of [`to_record`] for
/// everything the model holds).
pub fn from_record(record: &DatasetRecord) -> Resource {
    let mut out = Resource {
        doi: record.doi.clone(),
        url: record.landing_url.clone(),
        publisher: record.publisher.clone(),
        publication_year: if record.publication_year == 0 {
            String::new()
        } else {
            record.publication_year.to_string()
        },
        resource_type: record.resource_type.clone(),
        resource_type_general: resource_type_general(&record.resource_type).to_owned(),
        titles: vec![(record.title.clone(), String::new())],
        formats: record.formats.clone(),
        ..Default::default()
    };
    out.creators = record
        .creators
        .iter()
        .map(|c| Name {
            name: c.name.clone(),
            orcid: c.orcid.clone(),
            affiliations: if c.affiliation.is_empty() {
                vec![]
            } else {
                vec![c.affiliation.clone()]
            },
            ..Default::default()
        })
        .collect();
    out.subjects = record
        .keywords
        .iter()
        .map(|k| (k.clone(), String::new()))
        .chain(
            record
                .disciplines
                .iter()
                .map(|d| (d.clone(), DISCIPLINE_SCHEME.to_owned())),
        )
        .collect();
    if !record.updated_at.is_empty() {
        out.dates
            .push((record.updated_at.clone(), "Updated".into()));
    }
    if !record.embargo_until.is_empty() {
        out.dates
            .push((record.embargo_until.clone(), "Available".into()));
    }
    if let Some(t) = record
        .temporal
        .as_ref()
        .filter(|t| !t.start.is_empty() || !t.end.is_empty())
    {
        out.dates
            .push((format!("{}/{}", t.start, t.end), "Collected".into()));
    }
    out.alternate_ids.push((
        if record.origin.is_empty() {
            format!("/{}", record.id)
        } else {
            format!("{}/{}", record.origin, record.id)
        },
        MERIDIAN_ID_TYPE.into(),
    ));
    if !record.landing_url.is_empty() {
        out.alternate_ids
            .push((record.landing_url.clone(), "URL".into()));
    }
    if record.size_bytes != 0 {
        out.sizes.push(format!("{} bytes", record.size_bytes));
    }
    if record.file_count != 0 {
        out.sizes.push(format!("{} files", record.file_count));
    }
    if !record.license.is_empty() {
        let spdx = !record.license.starts_with("LicenseRef-");
        out.rights.push(Rights {
            text: record.license.clone(),
            uri: if spdx {
                format!("https://spdx.org/licenses/{}", record.license)
            } else {
                String::new()
            },
            identifier: record.license.clone(),
            scheme: if spdx { "SPDX".into() } else { String::new() },
        });
    }
    let access = access_uri(record.access);
    if !access.is_empty() {
        out.rights.push(Rights {
            uri: access.into(),
            ..Default::default()
        });
    }
    if !record.description.is_empty() {
        out.descriptions
            .push((record.description.clone(), "Abstract".into()));
    }
    if !record.project.is_empty() {
        out.descriptions
            .push((format!("Project: {}", record.project), "Other".into()));
    }
    out.boxes = record
        .spatial
        .iter()
        .map(|b| {
            [
                b.west.to_string(),
                b.south.to_string(),
                b.east.to_string(),
                b.north.to_string(),
            ]
        })
        .collect();
    out
}

/// Writes a resource as a kernel-4 `resource` element (with its namespace
/// and schema location) into `xml`.
pub fn write_xml<W: std::io::Write>(
    xml: &mut quick_xml::Writer<W>,
    r: &Resource,
) -> std::io::Result<()> {
    let location = format!("{NAMESPACE} {SCHEMA_LOCATION}");
    let mut w = XmlOut(xml);
    w.open(
        "resource",
        &[
            ("xmlns", NAMESPACE),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xsi:schemaLocation", &location),
        ],
    )?;
    if !r.doi.is_empty() {
        w.leaf("identifier", &[("identifierType", "DOI")], &r.doi)?;
    }
    w.open("creators", &[])?;
    for c in &r.creators {
        w.open("creator", &[])?;
        w.leaf("creatorName", &[], &c.name)?;
        if !c.orcid.is_empty() {
            w.leaf(
                "nameIdentifier",
                &[
                    ("nameIdentifierScheme", "ORCID"),
                    ("schemeURI", "https://orcid.org"),
                ],
                &c.orcid,
            )?;
        }
        for a in &c.affiliations {
            w.leaf("affiliation", &[], a)?;
        }
        w.close("creator")?;
    }
    w.close("creators")?;
    w.open("titles", &[])?;
    for (title, kind) in &r.titles {
        w.leaf("title", &attrs(&[("titleType", kind)]), title)?;
    }
    w.close("titles")?;
    w.leaf("publisher", &[], &r.publisher)?;
    w.leaf("publicationYear", &[], &r.publication_year)?;
    w.leaf(
        "resourceType",
        &[("resourceTypeGeneral", &r.resource_type_general)],
        &r.resource_type,
    )?;
    if !r.subjects.is_empty() {
        w.open("subjects", &[])?;
        for (subject, scheme) in &r.subjects {
            w.leaf("subject", &attrs(&[("subjectScheme", scheme)]), subject)?;
        }
        w.close("subjects")?;
    }
    if !r.dates.is_empty() {
        w.open("dates", &[])?;
        for (date, kind) in &r.dates {
            w.leaf("date", &[("dateType", kind)], date)?;
        }
        w.close("dates")?;
    }
    if !r.alternate_ids.is_empty() {
        w.open("alternateIdentifiers", &[])?;
        for (id, kind) in &r.alternate_ids {
            w.leaf(
                "alternateIdentifier",
                &[("alternateIdentifierType", kind)],
                id,
            )?;
        }
        w.close("alternateIdentifiers")?;
    }
    if !r.sizes.is_empty() {
        w.open("sizes", &[])?;
        for size in &r.sizes {
            w.leaf("size", &[], size)?;
        }
        w.close("sizes")?;
    }
    if !r.formats.is_empty() {
        w.open("formats", &[])?;
        for format in &r.formats {
            w.leaf("format", &[], format)?;
        }
        w.close("formats")?;
    }
    if !r.rights.is_empty() {
        w.open("rightsList", &[])?;
        for rights in &r.rights {
            let scheme_uri = if rights.scheme == "SPDX" {
                "https://spdx.org/licenses/"
            } else {
                ""
            };
            w.leaf(
                "rights",
                &attrs(&[
                    ("rightsURI", &rights.uri),
                    ("rightsIdentifier", &rights.identifier),
                    ("rightsIdentifierScheme", &rights.scheme),
                    ("schemeURI", scheme_uri),
                ]),
                &rights.text,
            )?;
        }
        w.close("rightsList")?;
    }
    if !r.descriptions.is_empty() {
        w.open("descriptions", &[])?;
        for (text, kind) in &r.descriptions {
            w.leaf("description", &[("descriptionType", kind)], text)?;
        }
        w.close("descriptions")?;
    }
    if !r.boxes.is_empty() {
        w.open("geoLocations", &[])?;
        for [west, south, east, north] in &r.boxes {
            w.open("geoLocation", &[])?;
            w.open("geoLocationBox", &[])?;
            w.leaf("westBoundLongitude", &[], west)?;
            w.leaf("eastBoundLongitude", &[], east)?;
            w.leaf("southBoundLatitude", &[], south)?;
            w.leaf("northBoundLatitude", &[], north)?;
            w.close("geoLocationBox")?;
            w.close("geoLocation")?;
        }
        w.close("geoLocations")?;
    }
    w.close("resource")
}

/// The record as one standalone kernel-4 XML document.
pub fn to_xml(record: &DatasetRecord) -> String {
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into memory cannot fail.
    let _ = writer.write_event(quick_xml::events::Event::Decl(
        quick_xml::events::BytesDecl::new("1.0", Some("UTF-8"), None),
    ));
    let _ = write_xml(&mut writer, &from_record(record));
    String::from_utf8_lossy(&writer.into_inner()).into_owned()
}

/// Writes the record's kernel-4 `resource` element to `out`, indented,
/// followed by a line break (for a document of many records).
pub fn write_resource<W: std::io::Write>(
    out: &mut W,
    record: &DatasetRecord,
) -> std::io::Result<()> {
    let mut writer = quick_xml::Writer::new_with_indent(&mut *out, b' ', 2);
    write_xml(&mut writer, &from_record(record))?;
    out.write_all(b"\n")
}

/// The record as a DataCite REST API DOI object (`id`, `type`, `attributes`).
pub fn to_json(record: &DatasetRecord) -> Value {
    let r = from_record(record);
    let mut a = Map::new();
    let mut put = |key: &str, value: Value| {
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            a.insert(key.to_owned(), value);
        }
    };
    put("doi", json!(r.doi));
    put("url", json!(r.url));
    put(
        "creators",
        Value::Array(
            r.creators
                .iter()
                .map(|c| {
                    let mut creator = json!({"name": c.name});
                    if !c.affiliations.is_empty() {
                        creator["affiliation"] = json!(c.affiliations);
                    }
                    if !c.orcid.is_empty() {
                        creator["nameIdentifiers"] = json!([{
                            "nameIdentifier": format!("https://orcid.org/{}", c.orcid),
                            "nameIdentifierScheme": "ORCID",
                            "schemeUri": "https://orcid.org"
                        }]);
                    }
                    creator
                })
                .collect(),
        ),
    );
    put("titles", pairs_json(&r.titles, "title", "titleType"));
    put("publisher", json!(r.publisher));
    if let Ok(year) = r.publication_year.parse::<u32>() {
        put("publicationYear", json!(year));
    }
    put(
        "types",
        json!({"resourceTypeGeneral": r.resource_type_general, "resourceType": r.resource_type}),
    );
    put(
        "subjects",
        pairs_json(&r.subjects, "subject", "subjectScheme"),
    );
    put("dates", pairs_json(&r.dates, "date", "dateType"));
    put(
        "alternateIdentifiers",
        pairs_json(
            &r.alternate_ids,
            "alternateIdentifier",
            "alternateIdentifierType",
        ),
    );
    put("sizes", json!(r.sizes));
    put("formats", json!(r.formats));
    put(
        "rightsList",
        Value::Array(
            r.rights
                .iter()
                .map(|x| {
                    let mut o = Map::new();
                    for (k, v) in [
                        ("rights", &x.text),
                        ("rightsUri", &x.uri),
                        ("rightsIdentifier", &x.identifier),
                        ("rightsIdentifierScheme", &x.scheme),
                    ] {
                        if !v.is_empty() {
                            o.insert(k.into(), json!(v));
                        }
                    }
                    Value::Object(o)
                })
                .collect(),
        ),
    );
    put(
        "descriptions",
        pairs_json(&r.descriptions, "description", "descriptionType"),
    );
    put(
        "geoLocations",
        Value::Array(
            record
                .spatial
                .iter()
                .map(|b| {
                    json!({"geoLocationBox": {
                        "westBoundLongitude": b.west, "eastBoundLongitude": b.east,
                        "southBoundLatitude": b.south, "northBoundLatitude": b.north
                    }})
                })
                .collect(),
        ),
    );
    put("schemaVersion", json!(NAMESPACE));
    let id = if record.doi.is_empty() {
        record.id.clone()
    } else {
        record.doi.clone()
    };
    json!({"id": id, "type": "dois", "attributes": Value::Object(a)})
}

fn pairs_json(pairs: &[(String, String)], text: &str, kind: &str) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(t, k)| {
                let mut o = Map::new();
                o.insert(text.into(), json!(t));
                if !k.is_empty() {
                    o.insert(kind.into(), json!(k));
                }
                Value::Object(o)
            })
            .collect(),
    )
}

/// Attributes with empty values left out.
fn attrs<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// Writes elements; text and attribute values are escaped by quick-xml and
/// stripped of the characters XML 1.0 forbids.
struct XmlOut<'w, W: std::io::Write>(&'w mut quick_xml::Writer<W>);

impl<W: std::io::Write> XmlOut<'_, W> {
    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> std::io::Result<()> {
        let mut start = quick_xml::events::BytesStart::new(name);
        for (key, value) in attrs {
            start.push_attribute((*key, xml_clean(value).as_str()));
        }
        self.0.write_event(quick_xml::events::Event::Start(start))
    }

    fn close(&mut self, name: &str) -> std::io::Result<()> {
        self.0.write_event(quick_xml::events::Event::End(
            quick_xml::events::BytesEnd::new(name),
        ))
    }

    fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> std::io::Result<()> {
        self.open(name, attrs)?;
        let text = xml_clean(text);
        self.0.write_event(quick_xml::events::Event::Text(
            quick_xml::events::BytesText::new(&text),
        ))?;
        self.close(name)
    }
}

/// `text` without the characters XML 1.0 forbids.
pub fn xml_clean(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}
