//! Simple Dublin Core (`oai_dc`) → the record model. Dublin Core says less
//! than the model, and repositories fill it in their own ways, so this
//! mapping is loose; `docs/datacite.md` says which element feeds which field.

use super::normalise::{short, Notes, Shape};
use super::tree::Element;
use super::IdSource;
use crate::proto::{
    Access, BoundingBox, Creator, DatasetRecord, GeoPoint, RelatedIdentifier, Rights,
};
use crate::record::{self, RecordError};

/// The record an `oai_dc:dc` element describes, normalised and validated.
pub fn to_record(
    dc: &Element,
    id: &IdSource,
    notes: &mut Notes,
) -> Result<DatasetRecord, RecordError> {
    let texts = |name: &str| -> Vec<&str> {
        dc.children
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let mut record = DatasetRecord::default();
    for identifier in texts("identifier") {
        let doi = record::canonical_doi(identifier);
        if record.doi.is_empty() && doi.starts_with("10.") && doi.contains('/') {
            record.doi = doi;
        } else if record.landing_url.is_empty()
            && (identifier.starts_with("https://") || identifier.starts_with("http://"))
        {
            record.landing_url = identifier.to_owned();
        }
    }
    record.id = match id {
        IdSource::Given(id) => id.clone(),
        IdSource::FromMetadata => {
            let other = texts("identifier")
                .into_iter()
                .find(|i| {
                    !i.contains("://")
                        && !i.chars().any(char::is_whitespace)
                        && !names_a_serial_or_book(i)
                })
                .map(str::to_owned);
            (!record.doi.is_empty())
                .then(|| record.doi.clone())
                .or(other)
                .ok_or_else(|| RecordError::new("id", "no dc:identifier to take an id from"))?
        }
    };
    if let Some(title) = texts("title").first() {
        record.title = notes.text("title", title, Shape::OneLine);
    }
    for (index, creator) in texts("creator").iter().enumerate() {
        record.creators.push(Creator {
            name: notes.text(&format!("creators[{index}].name"), creator, Shape::OneLine),
            ..Default::default()
        });
    }
    for subject in texts("subject") {
        let term = notes.term(&format!("keywords[{}]", record.keywords.len()), subject);
        if !term.is_empty() && !record.keywords.contains(&term) {
            record.keywords.push(term);
        }
    }
    if record.keywords.len() > record::MAX_KEYWORDS {
        notes.note(
            "keywords",
            format!(
                "kept the first {} of {}",
                record::MAX_KEYWORDS,
                record.keywords.len()
            ),
        );
        record.keywords.truncate(record::MAX_KEYWORDS);
    }
    let descriptions = texts("description");
    if !descriptions.is_empty() {
        record.description =
            notes.text("description", &descriptions.join("\n\n"), Shape::Paragraphs);
    }
    if let Some(publisher) = texts("publisher").first() {
        record.publisher = notes.text("publisher", publisher, Shape::OneLine);
    }
    // The publication year: the first dc:date that reads as a date.
    let mut date_error = None;
    for date in texts("date") {
        match notes.year("publication_year", date) {
            Ok(year) => {
                record.publication_year = year;
                date_error = None;
                break;
            }
            Err(e) => date_error = date_error.or(Some(e)),
        }
    }
    if let Some(error) = date_error {
        return Err(error);
    }
    // dc:type: the first that is not an info:eu-repo vocabulary URI.
    if let Some(kind) = texts("type").into_iter().find(|t| !t.starts_with("info:")) {
        record.resource_type = notes.text("resource_type", kind, Shape::OneLine);
    }
    for format in texts("format") {
        if let Some(bytes) = format
            .strip_suffix(" bytes")
            .and_then(|n| n.trim().parse().ok())
        {
            record.size_bytes = bytes;
            continue;
        }
        let term = notes.term(&format!("formats[{}]", record.formats.len()), format);
        if !term.is_empty()
            && !record.formats.contains(&term)
            && record.formats.len() < record::MAX_FORMATS
        {
            record.formats.push(term);
        }
    }
    // dc:relation: a DOI or a URL is a related resource (DC does not say
    // how it relates: `References`); the first other text names the project.
    for relation in texts("relation") {
        let doi = record::canonical_doi(relation);
        let kind = if doi.starts_with("10.") && doi.contains('/') && !doi.contains(' ') {
            Some(("DOI", doi))
        } else if relation.starts_with("https://") || relation.starts_with("http://") {
            Some(("URL", relation.to_owned()))
        } else {
            None
        };
        match kind {
            Some((kind, identifier))
                if record.related_identifiers.len() < record::MAX_RELATED_IDENTIFIERS =>
            {
                record.related_identifiers.push(RelatedIdentifier {
                    identifier,
                    identifier_type: kind.to_owned(),
                    relation_type: "References".to_owned(),
                    resource_type_general: String::new(),
                });
            }
            Some(_) => {}
            None if record.project.is_empty() => {
                record.project = notes.text("project", relation, Shape::OneLine);
            }
            None => {}
        }
    }
    // dc:language: the first that is a language tag.
    for language in texts("language") {
        if record::check_language_tag(language) {
            record.language = language.to_owned();
            break;
        }
        notes.note(
            "language",
            format!(
                "`{}` is not a language tag (BCP 47); not kept",
                short(language)
            ),
        );
    }
    for rights in texts("rights") {
        match rights.strip_prefix("info:eu-repo/semantics/") {
            Some("openAccess") => record.access = Access::Open as i32,
            Some("restrictedAccess") | Some("closedAccess") => {
                record.access = Access::Restricted as i32
            }
            // The model needs the embargo's end, which DC does not give.
            Some("embargoedAccess") => {
                notes.note(
                    "access",
                    "embargoed access without an end date; access left unset",
                );
            }
            // A statement or a URI: kept as a rights statement, and as
            // the license when it names one.
            _ => {
                let uri = rights.contains("://") && !rights.contains(char::is_whitespace);
                let statement = if uri {
                    Rights {
                        uri: rights.to_owned(),
                        ..Default::default()
                    }
                } else {
                    Rights {
                        statement: rights.to_owned(),
                        ..Default::default()
                    }
                };
                if record.rights.len() < record::MAX_RIGHTS {
                    super::datacite::read_rights(&statement, &mut record, notes);
                }
            }
        }
    }
    // dc:coverage is free text: a DCMI Box, a DCMI Point and a `start/end`
    // period are read; anything else (`Svalbard`, `Norway/Sweden`, a
    // GeoNames URI) is a place, as this node's own export writes places.
    let place = |record: &mut DatasetRecord, notes: &mut Notes, coverage: &str| {
        if record.geo_places.len() >= record::MAX_GEO_PLACES {
            notes.note(
                "geo_places",
                format!(
                    "`{}`: more than {} places; not kept",
                    short(coverage),
                    record::MAX_GEO_PLACES
                ),
            );
            return;
        }
        let field = format!("geo_places[{}]", record.geo_places.len());
        let text = notes.text(&field, coverage, Shape::OneLine);
        if !text.is_empty() && !record.geo_places.contains(&text) {
            record.geo_places.push(text);
        }
    };
    // A period: kept when the record has none yet; `None` when it is not
    // one (the reason), for the caller to keep the text as a place.
    let period =
        |record: &mut DatasetRecord, notes: &mut Notes, start: &str, end: &str| -> Option<String> {
            let mut tried = Notes::default();
            match tried.date_range(start, end) {
                Ok(temporal) => {
                    if record.temporal.is_none() {
                        record.temporal = temporal;
                        notes.changes.append(&mut tried.changes);
                    }
                    None
                }
                Err(e) => Some(e.reason),
            }
        };
    for coverage in texts("coverage") {
        if let Some(b) = dcmi_box(coverage) {
            record.spatial.push(b);
        } else if coverage.contains("limit=") {
            notes.note(
                "spatial",
                format!(
                    "`{}` is not a DCMI Box with four numbers; not kept",
                    short(coverage)
                ),
            );
        } else if coverage.contains("east=") || coverage.contains("north=") {
            match dcmi_point(coverage) {
                Some(point) if record.geo_points.len() < record::MAX_GEO_POINTS => {
                    record.geo_points.push(point)
                }
                Some(_) => notes.note(
                    "geo_points",
                    format!(
                        "`{}`: more than {} points; not kept",
                        short(coverage),
                        record::MAX_GEO_POINTS
                    ),
                ),
                None => notes.note(
                    "geo_points",
                    format!(
                        "`{}` is not a DCMI Point in degrees (east -180 to 180, north -90 to 90); \
                         not kept",
                        short(coverage)
                    ),
                ),
            }
        } else if let Some((start, end)) = dcmi_period(coverage) {
            if let Some(reason) = period(&mut record, notes, &start, &end) {
                notes.note(
                    "temporal",
                    format!(
                        "`{}` is not a DCMI Period ({reason}); not kept",
                        short(coverage)
                    ),
                );
            }
        } else if let Some((start, end)) = coverage.split_once('/') {
            if let Some(reason) = period(&mut record, notes, start, end) {
                notes.note(
                    "temporal",
                    format!(
                        "coverage `{}` is not a period `start/end` ({reason}); kept as a place",
                        short(coverage)
                    ),
                );
                place(&mut record, notes, coverage);
            }
        } else if period(&mut record, notes, coverage, coverage).is_some() {
            // Not a date either (a year, a day: the period of that date).
            place(&mut record, notes, coverage);
        }
    }
    record::validate(&record)?;
    Ok(record)
}

/// Whether `identifier` is an ISSN or an ISBN (bare, or as `issn:`,
/// `urn:isbn:` …): it names the journal or book a record appeared in, which
/// other records share, so it is never taken as a record's id.
fn names_a_serial_or_book(identifier: &str) -> bool {
    let lower = identifier.to_ascii_lowercase();
    let prefixed = ["urn:issn:", "urn:isbn:", "issn:", "isbn:"]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix));
    let bare = prefixed.unwrap_or(&lower);
    let digits: Vec<u32> = bare
        .chars()
        .filter(|c| *c != '-')
        .map(|c| if c == 'x' { Some(10) } else { c.to_digit(10) })
        .collect::<Option<_>>()
        .unwrap_or_default();
    // The check digit tells one from a number that merely looks like one
    // (`2018-0042`): X (10) only last, in an ISSN or an ISBN-10. Written
    // bare, an ISBN-10 needs its hyphens and an ISBN-13 its 978 or 979, so
    // that a plain number of ten or thirteen digits stays an id.
    let weighted = |weights: &mut dyn Iterator<Item = u32>| -> u32 {
        digits.iter().zip(weights).map(|(d, w)| d * w).sum()
    };
    let x_only_last = digits[..digits.len().saturating_sub(1)]
        .iter()
        .all(|d| *d < 10);
    match digits.len() {
        8 => {
            bare.len() == 9
                && bare.as_bytes()[4] == b'-'
                && x_only_last
                && weighted(&mut (1..=8).rev()) % 11 == 0
        }
        10 => {
            (prefixed.is_some() || bare.contains('-'))
                && x_only_last
                && weighted(&mut (1..=10).rev()) % 11 == 0
        }
        13 => {
            (bare.starts_with("978") || bare.starts_with("979"))
                && digits.iter().all(|d| *d < 10)
                && weighted(&mut [1, 3].into_iter().cycle()) % 10 == 0
        }
        _ => false,
    }
}

/// The `key=value` parts of a DCMI encoding (`a=1; b=2`), trimmed; a part
/// without `=` is passed over.
fn dcmi_parts(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
}

/// A DCMI Point in degrees (`east=…; north=…`, other parts such as
/// `name=` aside): none in another projection, or out of range.
fn dcmi_point(text: &str) -> Option<GeoPoint> {
    let (mut east, mut north) = (None, None);
    for (key, value) in dcmi_parts(text) {
        match key {
            "east" => east = Some(value.parse::<f64>().ok()?),
            "north" => north = Some(value.parse::<f64>().ok()?),
            "projection" => return None,
            _ => {}
        }
    }
    let (longitude, latitude) = (east?, north?);
    ((-180.0..=180.0).contains(&longitude) && (-90.0..=90.0).contains(&latitude)).then_some(
        GeoPoint {
            longitude,
            latitude,
        },
    )
}

/// The ends of a DCMI Period (`start=…; end=…`, other parts aside).
fn dcmi_period(text: &str) -> Option<(String, String)> {
    let (mut start, mut end) = (None, None);
    for (key, value) in dcmi_parts(text) {
        match key {
            "start" => start = Some(value.to_owned()),
            "end" => end = Some(value.to_owned()),
            _ => {}
        }
    }
    (start.is_some() || end.is_some()).then(|| (start.unwrap_or_default(), end.unwrap_or_default()))
}

/// A DCMI Box (`westlimit=…; southlimit=…; eastlimit=…; northlimit=…`).
fn dcmi_box(text: &str) -> Option<BoundingBox> {
    let mut sides = [None; 4];
    for part in text.split(';') {
        // `…; northlimit=53.9;`: a trailing separator ends no part.
        if part.trim().is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=')?;
        let slot = match key.trim() {
            "westlimit" => 0,
            "southlimit" => 1,
            "eastlimit" => 2,
            "northlimit" => 3,
            _ => continue,
        };
        sides[slot] = Some(value.trim().parse::<f64>().ok()?);
    }
    let [Some(west), Some(south), Some(east), Some(north)] = sides else {
        return None;
    };
    Some(BoundingBox {
        west,
        south,
        east,
        north,
    })
}
