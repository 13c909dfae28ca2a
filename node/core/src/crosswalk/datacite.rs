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
use crate::proto::{
    Access, AlternateIdentifier, BoundingBox, Creator, DatasetRecord, FundingReference, GeoPoint,
    GeoPolygon, RelatedIdentifier, Rights, Subject, TypedDate,
};
use crate::record::{self, RecordError};

pub use crate::record::{DISCIPLINE_SCHEME, MERIDIAN_ID_TYPE, RESOURCE_TYPES};

/// The DataCite kernel-4 namespace.
pub const NAMESPACE: &str = "http://datacite.org/schema/kernel-4";
/// Where its schema is published.
pub const SCHEMA_LOCATION: &str = "http://schema.datacite.org/meta/kernel-4/metadata.xsd";

/// A creator as DataCite writes one.
#[derive(Debug, Default, Clone)]
pub struct Name {
    pub name: String,
    pub given: String,
    pub family: String,
    pub orcid: String,
    pub affiliations: Vec<String>,
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
    pub subjects: Vec<Subject>,
    pub dates: Vec<TypedDate>,
    pub alternate_ids: Vec<(String, String)>,
    pub sizes: Vec<String>,
    pub formats: Vec<String>,
    pub rights: Vec<Rights>,
    pub descriptions: Vec<(String, String)>,
    /// west, south, east, north.
    pub boxes: Vec<[String; 4]>,
    /// longitude, latitude.
    pub points: Vec<[String; 2]>,
    /// Each polygon's points: longitude, latitude.
    pub polygons: Vec<Vec<[String; 2]>>,
    pub places: Vec<String>,
    pub related: Vec<RelatedIdentifier>,
    pub funding: Vec<FundingReference>,
    pub version: String,
    pub language: String,
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
    let attr = |e: &Element, name: &str| e.attr(name).unwrap_or_default().to_owned();
    out.subjects = resource
        .list("subjects", "subject")
        .map(|s| Subject {
            value: text(s),
            scheme: attr(s, "subjectScheme"),
            scheme_uri: attr(s, "schemeURI"),
            value_uri: attr(s, "valueURI"),
            classification_code: attr(s, "classificationCode"),
        })
        .collect();
    out.dates = resource
        .list("dates", "date")
        .map(|d| TypedDate {
            date: text(d),
            date_type: attr(d, "dateType"),
            information: attr(d, "dateInformation"),
        })
        .collect();
    out.related = resource
        .list("relatedIdentifiers", "relatedIdentifier")
        .map(|r| RelatedIdentifier {
            identifier: text(r),
            identifier_type: attr(r, "relatedIdentifierType"),
            relation_type: attr(r, "relationType"),
            resource_type_general: attr(r, "resourceTypeGeneral"),
        })
        .collect();
    out.funding = resource
        .list("fundingReferences", "fundingReference")
        .map(|f| {
            let identifier = f.child("funderIdentifier");
            let award = f.child("awardNumber");
            FundingReference {
                funder_name: f.child_text("funderName").to_owned(),
                funder_identifier: identifier.map(text).unwrap_or_default(),
                funder_identifier_type: identifier
                    .map(|i| attr(i, "funderIdentifierType"))
                    .unwrap_or_default(),
                award_number: award.map(text).unwrap_or_default(),
                award_uri: award.map(|a| attr(a, "awardURI")).unwrap_or_default(),
                award_title: f.child_text("awardTitle").to_owned(),
            }
        })
        .collect();
    out.version = resource.child_text("version").to_owned();
    out.language = resource.child_text("language").to_owned();
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
            statement: text(r),
            uri: attr(r, "rightsURI"),
            identifier: attr(r, "rightsIdentifier"),
            identifier_scheme: attr(r, "rightsIdentifierScheme"),
            scheme_uri: attr(r, "schemeURI"),
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
    let point = |p: &Element| {
        [
            p.child_text("pointLongitude").to_owned(),
            p.child_text("pointLatitude").to_owned(),
        ]
    };
    for location in resource.list("geoLocations", "geoLocation") {
        out.places
            .extend(location.all("geoLocationPlace").map(text));
        for p in location.all("geoLocationPoint") {
            // Kernel 3 writes a point as text: `lat lon`.
            out.points.push(match kernel3_numbers::<2>(p) {
                Some([lat, lon]) => [lon, lat],
                None => point(p),
            });
        }
        for b in location.all("geoLocationBox") {
            // Kernel 3 writes a box as text: `south west north east`.
            out.boxes.push(match kernel3_numbers::<4>(b) {
                Some([south, west, north, east]) => [west, south, east, north],
                None => [
                    b.child_text("westBoundLongitude").to_owned(),
                    b.child_text("southBoundLatitude").to_owned(),
                    b.child_text("eastBoundLongitude").to_owned(),
                    b.child_text("northBoundLatitude").to_owned(),
                ],
            });
        }
        for polygon in location.all("geoLocationPolygon") {
            out.polygons
                .push(polygon.all("polygonPoint").map(point).collect());
        }
    }
    out
}

/// The `N` whitespace-separated values of a kernel-3 point or box, written
/// as the element's text; `None` for the kernel-4 form (child elements).
/// A kernel-3 text with another count of values is kept whole in every
/// slot, so the record is refused naming it.
fn kernel3_numbers<const N: usize>(element: &Element) -> Option<[String; N]> {
    let text = element.text.trim();
    if !element.children.is_empty() || text.is_empty() {
        return None;
    }
    let parts: Vec<&str> = text.split_whitespace().collect();
    Some(std::array::from_fn(|at| {
        if parts.len() == N {
            parts[at].to_owned()
        } else {
            text.to_owned()
        }
    }))
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
        version: s(a.get("version")),
        language: s(a.get("language")),
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
    out.subjects = list("subjects")
        .iter()
        .map(|v| Subject {
            value: s(v.get("subject")),
            scheme: s(v.get("subjectScheme")),
            scheme_uri: s(v.get("schemeUri")),
            value_uri: s(v.get("valueUri")),
            classification_code: s(v.get("classificationCode")),
        })
        .collect();
    out.dates = list("dates")
        .iter()
        .map(|v| TypedDate {
            date: s(v.get("date")),
            date_type: s(v.get("dateType")),
            information: s(v.get("dateInformation")),
        })
        .collect();
    out.related = list("relatedIdentifiers")
        .iter()
        .map(|v| RelatedIdentifier {
            identifier: s(v.get("relatedIdentifier")),
            identifier_type: s(v.get("relatedIdentifierType")),
            relation_type: s(v.get("relationType")),
            resource_type_general: s(v.get("resourceTypeGeneral")),
        })
        .collect();
    out.funding = list("fundingReferences")
        .iter()
        .map(|v| FundingReference {
            funder_name: s(v.get("funderName")),
            funder_identifier: s(v.get("funderIdentifier")),
            funder_identifier_type: s(v.get("funderIdentifierType")),
            award_number: s(v.get("awardNumber")),
            award_uri: s(v.get("awardUri")),
            award_title: s(v.get("awardTitle")),
        })
        .collect();
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
            statement: s(r.get("rights")),
            uri: s(r.get("rightsUri")),
            identifier: s(r.get("rightsIdentifier")),
            identifier_scheme: s(r.get("rightsIdentifierScheme")),
            scheme_uri: s(r.get("schemeUri")),
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
        let point = |p: &Value| [s(p.get("pointLongitude")), s(p.get("pointLatitude"))];
        if let Some(p) = location.get("geoLocationPoint") {
            out.points.push(point(p));
        }
        match location.get("geoLocationPlace") {
            Some(Value::Array(places)) => out.places.extend(places.iter().map(|p| s(Some(p)))),
            Some(place) => out.places.push(s(Some(place))),
            None => {}
        }
        // One polygon: `[{"polygonPoint": {…}}, …]`; several: an array of those.
        let polygons = match location.get("geoLocationPolygon") {
            Some(Value::Array(items)) if items.iter().all(Value::is_array) => items.clone(),
            Some(Value::Array(items)) => vec![Value::Array(items.clone())],
            _ => Vec::new(),
        };
        for polygon in polygons {
            let points = polygon
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item.get("polygonPoint"))
                .map(point)
                .collect();
            out.polygons.push(points);
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
    // A bare term is a keyword, one of the node's own disciplines a
    // discipline; any other subject is kept whole, and a Fields of Science
    // one names a discipline too.
    for raw in &resource.subjects {
        let subject = Subject {
            value: raw.value.clone(),
            scheme: raw.scheme.trim().to_owned(),
            scheme_uri: raw.scheme_uri.trim().to_owned(),
            value_uri: raw.value_uri.trim().to_owned(),
            classification_code: raw.classification_code.trim().to_owned(),
        };
        let own_discipline = subject.scheme.eq_ignore_ascii_case(DISCIPLINE_SCHEME)
            && subject.scheme_uri.is_empty()
            && subject.value_uri.is_empty()
            && subject.classification_code.is_empty();
        if record::is_keyword(&subject) || own_discipline {
            let (list, name) = if own_discipline {
                (&mut record.disciplines, "disciplines")
            } else {
                (&mut record.keywords, "keywords")
            };
            let term = notes.term(&format!("{name}[{}]", list.len()), &subject.value);
            if !term.is_empty() && !list.contains(&term) {
                list.push(term);
            }
            continue;
        }
        let field = format!("subjects[{}].value", record.subjects.len());
        let value = notes.text(&field, &subject.value, Shape::OneLine);
        if !value.is_empty() {
            record.subjects.push(Subject { value, ..subject });
        }
    }
    if record.subjects.len() > record::MAX_SUBJECTS {
        notes.note(
            "subjects",
            format!(
                "kept the first {} of {}",
                record::MAX_SUBJECTS,
                record.subjects.len()
            ),
        );
        record.subjects.truncate(record::MAX_SUBJECTS);
    }
    record::add_subject_disciplines(&mut record);
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
    // The others, but for the node's own ORIGIN/ID and the landing page.
    for (text, kind) in &resource.alternate_ids {
        let (text, kind) = (text.trim(), kind.trim());
        let landing = kind.eq_ignore_ascii_case("URL") && text == record.landing_url;
        if text.is_empty() || kind == MERIDIAN_ID_TYPE || landing {
            continue;
        }
        if kind.is_empty() {
            notes.note(
                "alternate_identifiers",
                format!("`{}` has no type; not kept", short(text)),
            );
            continue;
        }
        record.alternate_identifiers.push(AlternateIdentifier {
            identifier: text.to_owned(),
            identifier_type: kind.to_owned(),
        });
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
    limit_to(&mut record.rights, record::MAX_RIGHTS, "rights", notes);
    limit_to(
        &mut record.alternate_identifiers,
        record::MAX_ALTERNATE_IDENTIFIERS,
        "alternate_identifiers",
        notes,
    );
    // The first plain Updated, Available (when embargoed) and Collected
    // dates have fields of their own; the others are kept as typed dates.
    let embargoed = record.access == Access::Embargoed as i32;
    for raw in &resource.dates {
        let (date, information) = (raw.date.as_str(), raw.information.trim());
        let Some(kind) = record::canonical_term(&raw.date_type, record::DATE_TYPES) else {
            notes.note(
                "dates",
                format!(
                    "`{}` is not a DataCite date type; the date `{}` is not kept",
                    short(&raw.date_type),
                    short(date)
                ),
            );
            continue;
        };
        match kind {
            "Updated" if information.is_empty() && record.updated_at.is_empty() => {
                record.updated_at = notes.date("updated_at", date)?;
                continue;
            }
            "Available"
                if embargoed && information.is_empty() && record.embargo_until.is_empty() =>
            {
                match notes.date("embargo_until", date) {
                    Ok(until) => record.embargo_until = until,
                    Err(e) => notes.note("embargo_until", format!("{}; not kept", e.reason)),
                }
                continue;
            }
            "Collected" if information.is_empty() && record.temporal.is_none() => {
                let (start, end) = date.split_once('/').unwrap_or((date, date));
                record.temporal = notes.date_range(start, end)?;
                continue;
            }
            _ => {}
        }
        let field = format!("dates[{}]", record.dates.len());
        let date = match date.split_once('/') {
            None => notes.date(&field, date)?,
            Some((start, end)) => {
                let bound = |notes: &mut Notes, text: &str| -> Result<String, RecordError> {
                    if text.trim().is_empty() {
                        Ok(String::new())
                    } else {
                        notes.date(&field, text)
                    }
                };
                let start = bound(notes, start)?;
                let end = bound(notes, end)?;
                format!("{start}/{end}")
            }
        };
        record.dates.push(TypedDate {
            date,
            date_type: kind.to_owned(),
            information: notes.text(&format!("{field}.information"), information, Shape::OneLine),
        });
    }
    limit_to(&mut record.dates, record::MAX_DATES, "dates", notes);
    // The model needs an embargo's end; without a usable `Available` date
    // access is left unset, as for Dublin Core, not the record refused.
    if embargoed && record.embargo_until.is_empty() {
        record.access = Access::Unspecified as i32;
        notes.note(
            "access",
            "embargoed access without an end date (an `Available` date); access left unset",
        );
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
    read_related(resource, &mut record, notes);
    read_funding(resource, &mut record, notes);
    for (index, [lon, lat]) in resource.points.iter().enumerate() {
        let point = read_point(&format!("geo_points[{index}]"), lon, lat)?;
        record.geo_points.push(point);
    }
    for (index, points) in resource.polygons.iter().enumerate() {
        let points = points
            .iter()
            .enumerate()
            .map(|(at, [lon, lat])| {
                read_point(&format!("geo_polygons[{index}].points[{at}]"), lon, lat)
            })
            .collect::<Result<_, _>>()?;
        record.geo_polygons.push(GeoPolygon { points });
    }
    for place in &resource.places {
        let field = format!("geo_places[{}]", record.geo_places.len());
        let place = notes.text(&field, place, Shape::OneLine);
        if !place.is_empty() {
            record.geo_places.push(place);
        }
    }
    record.dataset_version = notes.text("dataset_version", &resource.version, Shape::OneLine);
    // `xs:language` lets DataCite hold `English`; the model holds BCP 47
    // tags. What is not one is left out and reported, as for Dublin Core.
    let language = resource.language.trim();
    if language.is_empty() || record::check_language_tag(language) {
        record.language = language.to_owned();
    } else {
        notes.note(
            "language",
            format!(
                "`{}` is not a language tag (BCP 47); not kept",
                short(language)
            ),
        );
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
    limit_to(list, max, field, notes);
}

fn limit_to<T>(list: &mut Vec<T>, max: usize, field: &str, notes: &mut Notes) {
    if list.len() > max {
        notes.note(field, format!("kept the first {max} of {}", list.len()));
        list.truncate(max);
    }
}

/// A point from its text coordinates; a coordinate that is not a number is
/// refused with its field.
fn read_point(field: &str, lon: &str, lat: &str) -> Result<GeoPoint, RecordError> {
    let degrees = |name: &str, text: &str| -> Result<f64, RecordError> {
        text.trim().parse().map_err(|_| {
            RecordError::new(
                format!("{field}.{name}"),
                format!("`{}` is not a number of degrees", short(text)),
            )
        })
    };
    Ok(GeoPoint {
        longitude: degrees("longitude", lon)?,
        latitude: degrees("latitude", lat)?,
    })
}

/// Related identifiers with DataCite's types; one whose identifier or
/// relation type is not DataCite's is reported and not kept.
fn read_related(resource: &Resource, record: &mut DatasetRecord, notes: &mut Notes) {
    for raw in &resource.related {
        let field = format!("related_identifiers[{}]", record.related_identifiers.len());
        let identifier = notes.text(&field, &raw.identifier, Shape::OneLine);
        if identifier.is_empty() {
            continue;
        }
        let kind = record::canonical_term(&raw.identifier_type, record::RELATED_IDENTIFIER_TYPES);
        let relation = record::canonical_term(&raw.relation_type, record::RELATION_TYPES);
        let (Some(kind), Some(relation)) = (kind, relation) else {
            notes.note(
                &field,
                format!(
                    "`{}`: `{}` / `{}` are not DataCite's identifier and relation types; not kept",
                    short(&identifier),
                    short(&raw.identifier_type),
                    short(&raw.relation_type)
                ),
            );
            continue;
        };
        let general = raw.resource_type_general.trim();
        let general = match record::canonical_term(general, RESOURCE_TYPES) {
            Some(general) => general.to_owned(),
            None if general.is_empty() => String::new(),
            None => {
                notes.note(
                    &format!("{field}.resource_type_general"),
                    format!(
                        "`{}` is not a DataCite resource type; not kept",
                        short(general)
                    ),
                );
                String::new()
            }
        };
        record.related_identifiers.push(RelatedIdentifier {
            identifier,
            identifier_type: kind.to_owned(),
            relation_type: relation.to_owned(),
            resource_type_general: general,
        });
    }
    limit_to(
        &mut record.related_identifiers,
        record::MAX_RELATED_IDENTIFIERS,
        "related_identifiers",
        notes,
    );
}

/// Funding references; a funder identifier of a type DataCite does not
/// know is reported and not kept (the funder is).
fn read_funding(resource: &Resource, record: &mut DatasetRecord, notes: &mut Notes) {
    for raw in &resource.funding {
        let field = format!("funding_references[{}]", record.funding_references.len());
        let funder_name = notes.text(
            &format!("{field}.funder_name"),
            &raw.funder_name,
            Shape::OneLine,
        );
        if funder_name.is_empty() {
            notes.note(
                &field,
                "a funding reference without a funder name is not kept",
            );
            continue;
        }
        let mut funder_identifier = raw.funder_identifier.trim().to_owned();
        let mut funder_identifier_type = String::new();
        if !funder_identifier.is_empty() {
            match record::canonical_term(
                &raw.funder_identifier_type,
                record::FUNDER_IDENTIFIER_TYPES,
            ) {
                Some(kind) => funder_identifier_type = kind.to_owned(),
                None => {
                    notes.note(
                        &format!("{field}.funder_identifier"),
                        format!(
                            "`{}` has no DataCite funder identifier type (`{}`); not kept",
                            short(&funder_identifier),
                            short(&raw.funder_identifier_type)
                        ),
                    );
                    funder_identifier.clear();
                }
            }
        }
        record.funding_references.push(FundingReference {
            funder_name,
            funder_identifier,
            funder_identifier_type,
            award_number: raw.award_number.trim().to_owned(),
            award_uri: raw.award_uri.trim().to_owned(),
            award_title: notes.text(
                &format!("{field}.award_title"),
                &raw.award_title,
                Shape::OneLine,
            ),
        });
    }
    limit_to(
        &mut record.funding_references,
        record::MAX_FUNDING_REFERENCES,
        "funding_references",
        notes,
    );
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

/// An access right (`info:eu-repo/semantics/…Access`), or a rights
/// statement: kept as written, the first license one names kept as
/// `license` too; the statement that stands for that license alone (as
/// export writes it) is the license and is not kept twice.
pub(super) fn read_rights(raw: &Rights, record: &mut DatasetRecord, notes: &mut Notes) {
    if let Some(access) = record::access_of_rights_uri(&raw.uri) {
        if record.access == Access::Unspecified as i32 {
            record.access = access as i32;
        }
        return;
    }
    let field = format!("rights[{}]", record.rights.len());
    let rights = Rights {
        statement: notes.text(
            &format!("{field}.statement"),
            &raw.statement,
            Shape::Paragraphs,
        ),
        uri: raw.uri.trim().to_owned(),
        identifier: raw.identifier.trim().to_owned(),
        identifier_scheme: raw.identifier_scheme.trim().to_owned(),
        scheme_uri: raw.scheme_uri.trim().to_owned(),
    };
    if rights.statement.is_empty() && rights.uri.is_empty() && rights.identifier.is_empty() {
        return;
    }
    if record.license.is_empty() {
        if let Some(license) = record::rights_license(&rights) {
            record.license = license;
        }
    }
    if !record.license.is_empty() && record::license_rights(&record.license) == rights {
        return;
    }
    record.rights.push(rights);
}

// ---------------------------------------------------------------------------
// Writing.

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
    let term = |value: &String, scheme: &str| Subject {
        value: value.clone(),
        scheme: scheme.to_owned(),
        ..Default::default()
    };
    out.subjects = record
        .keywords
        .iter()
        .map(|k| term(k, ""))
        .chain(
            record
                .disciplines
                .iter()
                .map(|d| term(d, DISCIPLINE_SCHEME)),
        )
        .chain(record.subjects.iter().cloned())
        .collect();
    let date = |date: String, kind: &str| TypedDate {
        date,
        date_type: kind.to_owned(),
        information: String::new(),
    };
    if !record.updated_at.is_empty() {
        out.dates.push(date(record.updated_at.clone(), "Updated"));
    }
    if !record.embargo_until.is_empty() {
        out.dates
            .push(date(record.embargo_until.clone(), "Available"));
    }
    if let Some(t) = record
        .temporal
        .as_ref()
        .filter(|t| !t.start.is_empty() || !t.end.is_empty())
    {
        out.dates
            .push(date(format!("{}/{}", t.start, t.end), "Collected"));
    }
    out.dates.extend(record.dates.iter().cloned());
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
    out.alternate_ids.extend(
        record
            .alternate_identifiers
            .iter()
            .map(|a| (a.identifier.clone(), a.identifier_type.clone())),
    );
    if record.size_bytes != 0 {
        out.sizes.push(format!("{} bytes", record.size_bytes));
    }
    if record.file_count != 0 {
        out.sizes.push(format!("{} files", record.file_count));
    }
    if !record.license.is_empty() {
        out.rights.push(record::license_rights(&record.license));
    }
    out.rights.extend(record.rights.iter().cloned());
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
    let point = |p: &GeoPoint| [p.longitude.to_string(), p.latitude.to_string()];
    out.points = record.geo_points.iter().map(point).collect();
    out.polygons = record
        .geo_polygons
        .iter()
        .map(|polygon| polygon.points.iter().map(point).collect())
        .collect();
    out.places = record.geo_places.clone();
    out.related = record.related_identifiers.clone();
    out.funding = record.funding_references.clone();
    out.version = record.dataset_version.clone();
    out.language = record.language.clone();
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
        for s in &r.subjects {
            w.leaf(
                "subject",
                &attrs(&[
                    ("subjectScheme", &s.scheme),
                    ("schemeURI", &s.scheme_uri),
                    ("valueURI", &s.value_uri),
                    ("classificationCode", &s.classification_code),
                ]),
                &s.value,
            )?;
        }
        w.close("subjects")?;
    }
    if !r.dates.is_empty() {
        w.open("dates", &[])?;
        for d in &r.dates {
            w.leaf(
                "date",
                &attrs(&[
                    ("dateType", &d.date_type),
                    ("dateInformation", &d.information),
                ]),
                &d.date,
            )?;
        }
        w.close("dates")?;
    }
    if !r.language.is_empty() {
        w.leaf("language", &[], &r.language)?;
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
    if !r.related.is_empty() {
        w.open("relatedIdentifiers", &[])?;
        for related in &r.related {
            w.leaf(
                "relatedIdentifier",
                &attrs(&[
                    ("relatedIdentifierType", &related.identifier_type),
                    ("relationType", &related.relation_type),
                    ("resourceTypeGeneral", &related.resource_type_general),
                ]),
                &related.identifier,
            )?;
        }
        w.close("relatedIdentifiers")?;
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
    if !r.version.is_empty() {
        w.leaf("version", &[], &r.version)?;
    }
    if !r.rights.is_empty() {
        w.open("rightsList", &[])?;
        for rights in &r.rights {
            w.leaf(
                "rights",
                &attrs(&[
                    ("rightsURI", &rights.uri),
                    ("rightsIdentifier", &rights.identifier),
                    ("rightsIdentifierScheme", &rights.identifier_scheme),
                    ("schemeURI", &rights.scheme_uri),
                ]),
                &rights.statement,
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
    let located = !(r.boxes.is_empty()
        && r.points.is_empty()
        && r.polygons.is_empty()
        && r.places.is_empty());
    if located {
        // One geoLocation each: the model keeps places, points, boxes and
        // polygons as lists of their own, not grouped.
        w.open("geoLocations", &[])?;
        for place in &r.places {
            w.open("geoLocation", &[])?;
            w.leaf("geoLocationPlace", &[], place)?;
            w.close("geoLocation")?;
        }
        for point in &r.points {
            w.open("geoLocation", &[])?;
            w.point("geoLocationPoint", point)?;
            w.close("geoLocation")?;
        }
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
        for polygon in &r.polygons {
            w.open("geoLocation", &[])?;
            w.open("geoLocationPolygon", &[])?;
            for point in polygon {
                w.point("polygonPoint", point)?;
            }
            w.close("geoLocationPolygon")?;
            w.close("geoLocation")?;
        }
        w.close("geoLocations")?;
    }
    if !r.funding.is_empty() {
        w.open("fundingReferences", &[])?;
        for f in &r.funding {
            w.open("fundingReference", &[])?;
            w.leaf("funderName", &[], &f.funder_name)?;
            if !f.funder_identifier.is_empty() {
                w.leaf(
                    "funderIdentifier",
                    &[("funderIdentifierType", &f.funder_identifier_type)],
                    &f.funder_identifier,
                )?;
            }
            if !f.award_number.is_empty() || !f.award_uri.is_empty() {
                w.leaf(
                    "awardNumber",
                    &attrs(&[("awardURI", &f.award_uri)]),
                    &f.award_number,
                )?;
            }
            if !f.award_title.is_empty() {
                w.leaf("awardTitle", &[], &f.award_title)?;
            }
            w.close("fundingReference")?;
        }
        w.close("fundingReferences")?;
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
        Value::Array(
            r.subjects
                .iter()
                .map(|s| {
                    fields_json(&[
                        ("subject", &s.value),
                        ("subjectScheme", &s.scheme),
                        ("schemeUri", &s.scheme_uri),
                        ("valueUri", &s.value_uri),
                        ("classificationCode", &s.classification_code),
                    ])
                })
                .collect(),
        ),
    );
    put(
        "dates",
        Value::Array(
            r.dates
                .iter()
                .map(|d| {
                    fields_json(&[
                        ("date", &d.date),
                        ("dateType", &d.date_type),
                        ("dateInformation", &d.information),
                    ])
                })
                .collect(),
        ),
    );
    put("language", json!(r.language));
    put("version", json!(r.version));
    put(
        "relatedIdentifiers",
        Value::Array(
            r.related
                .iter()
                .map(|x| {
                    fields_json(&[
                        ("relatedIdentifier", &x.identifier),
                        ("relatedIdentifierType", &x.identifier_type),
                        ("relationType", &x.relation_type),
                        ("resourceTypeGeneral", &x.resource_type_general),
                    ])
                })
                .collect(),
        ),
    );
    put(
        "fundingReferences",
        Value::Array(
            r.funding
                .iter()
                .map(|f| {
                    fields_json(&[
                        ("funderName", &f.funder_name),
                        ("funderIdentifier", &f.funder_identifier),
                        ("funderIdentifierType", &f.funder_identifier_type),
                        ("awardNumber", &f.award_number),
                        ("awardUri", &f.award_uri),
                        ("awardTitle", &f.award_title),
                    ])
                })
                .collect(),
        ),
    );
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
                    fields_json(&[
                        ("rights", &x.statement),
                        ("rightsUri", &x.uri),
                        ("rightsIdentifier", &x.identifier),
                        ("rightsIdentifierScheme", &x.identifier_scheme),
                        ("schemeUri", &x.scheme_uri),
                    ])
                })
                .collect(),
        ),
    );
    put(
        "descriptions",
        pairs_json(&r.descriptions, "description", "descriptionType"),
    );
    let point = |p: &GeoPoint| json!({"pointLongitude": p.longitude, "pointLatitude": p.latitude});
    let places = record
        .geo_places
        .iter()
        .map(|place| json!({ "geoLocationPlace": place }));
    let points = record
        .geo_points
        .iter()
        .map(|p| json!({ "geoLocationPoint": point(p) }));
    let boxes = record.spatial.iter().map(|b| {
        json!({"geoLocationBox": {
            "westBoundLongitude": b.west, "eastBoundLongitude": b.east,
            "southBoundLatitude": b.south, "northBoundLatitude": b.north
        }})
    });
    let polygons = record.geo_polygons.iter().map(|polygon| {
        let points: Vec<Value> = polygon
            .points
            .iter()
            .map(|p| json!({ "polygonPoint": point(p) }))
            .collect();
        json!({ "geoLocationPolygon": points })
    });
    put(
        "geoLocations",
        Value::Array(places.chain(points).chain(boxes).chain(polygons).collect()),
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

/// A JSON object of the non-empty values among `fields`.
fn fields_json(fields: &[(&str, &String)]) -> Value {
    let mut o = Map::new();
    for (key, value) in fields {
        if !value.is_empty() {
            o.insert((*key).into(), json!(value));
        }
    }
    Value::Object(o)
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

    fn point(&mut self, name: &str, [longitude, latitude]: &[String; 2]) -> std::io::Result<()> {
        self.open(name, &[])?;
        self.leaf("pointLongitude", &[], longitude)?;
        self.leaf("pointLatitude", &[], latitude)?;
        self.close(name)
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
