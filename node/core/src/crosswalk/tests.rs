use super::*;
use crate::proto::{Access, BoundingBox, GeoPoint};

const MESSY: &str = include_str!("../../../../tests/fixtures/datacite/messy.xml");

fn items(doc: &str, format: Format) -> Vec<Item> {
    XmlRecords::new(doc.as_bytes(), format)
        .map(Result::unwrap)
        .collect()
}

fn record(item: &Item) -> &Converted {
    match &item.outcome {
        Outcome::Record(c) => c,
        other => panic!("line {}: {other:?}", item.line),
    }
}

#[test]
fn datacite_xml_maps_every_property_the_model_holds() {
    let items = items(MESSY, Format::DataciteXml);
    assert_eq!(items.len(), 3);
    let Converted { record: r, changes } = record(&items[0]);
    assert_eq!(r.id, "10.5285/b1a3c7d2-0f4e-4a51-9c1b-2e1d5f6a7b8c");
    assert_eq!(r.doi, r.id);
    assert_eq!(
        r.title,
        "Sea ice thickness from airborne EM, Weddell Sea, 2019"
    );
    assert_eq!(r.creators.len(), 2);
    assert_eq!(r.creators[0].name, "Lindqvist, Astrid");
    assert_eq!(r.creators[0].orcid, "0000-0002-1825-0097");
    assert_eq!(r.creators[0].affiliation, "British Antarctic Survey");
    assert_eq!(r.publisher, "UK Polar Data Centre");
    assert_eq!(r.publication_year, 2021);
    assert_eq!(r.resource_type, "Airborne electromagnetic soundings");
    assert_eq!(r.keywords, ["sea ice"]);
    assert_eq!(
        r.subjects
            .iter()
            .map(|s| (s.value.as_str(), s.scheme.as_str(), s.scheme_uri.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                "EARTH SCIENCE > CRYOSPHERE > SEA ICE > ICE DEPTH/THICKNESS",
                "GCMD",
                "https://gcmd.earthdata.nasa.gov/kms"
            ),
            (
                "FOS: Earth and related environmental sciences",
                "Fields of Science and Technology (FOS)",
                ""
            ),
        ]
    );
    assert_eq!(r.disciplines, ["Earth and related environmental sciences"]);
    assert_eq!(r.language, "en");
    assert_eq!(r.dataset_version, "1.1");
    assert_eq!(r.related_identifiers[0].identifier, "10.1029/2020JC016798");
    assert_eq!(r.related_identifiers[0].relation_type, "IsCitedBy");
    assert_eq!(
        r.funding_references[0].funder_name,
        "Natural Environment Research Council"
    );
    assert_eq!(r.funding_references[0].award_number, "NE/S00257X/1");
    assert_eq!(r.rights.len(), 1, "the CC statement, kept as written");
    assert_eq!(
        r.rights[0].uri,
        "https://creativecommons.org/licenses/by/4.0/"
    );
    assert!(
        r.alternate_identifiers.is_empty(),
        "the URL is the landing page"
    );
    let t = r.temporal.as_ref().unwrap();
    assert_eq!(
        (t.start.as_str(), t.end.as_str()),
        ("2019-09-02", "2019-10-15")
    );
    assert_eq!(r.updated_at, "2022-03-01T12:00:00Z");
    assert!(r.landing_url.starts_with("https://data.bas.ac.uk/"));
    assert_eq!((r.size_bytes, r.file_count), (1_048_576, 412));
    assert_eq!(r.formats, ["NetCDF", "CSV"]);
    assert_eq!(r.license, "CC-BY-4.0");
    assert_eq!(r.access, Access::Open as i32);
    assert_eq!(
        r.description,
        "Sea ice thickness along 14 flight lines over the western Weddell Sea,\n\
         measured with an airborne electromagnetic induction sounder.\n\n\
         Thickness is total (ice plus snow), in metres."
    );
    assert_eq!(r.project, "Weddell Sea Ice Mass Balance");
    assert_eq!(
        r.spatial,
        [BoundingBox {
            west: -60.5,
            south: -75.0,
            east: -40.25,
            north: -65.5
        },]
    );
    assert_eq!(
        r.geo_points,
        [GeoPoint {
            longitude: -52.1,
            latitude: -70.3
        }]
    );
    assert!(
        changes.is_empty(),
        "a clean record is not changed: {changes:?}"
    );
}

#[test]
fn messy_records_are_normalised_with_each_change_reported() {
    let items = items(MESSY, Format::DataciteXml);
    let Converted { record: r, changes } = record(&items[1]);
    assert_eq!(r.doi, "10.17632/xk4z9r2t3m.2");
    assert_eq!(r.title, "Ice core δ18O record, Dronning Maud Land");
    assert_eq!(r.creators[0].name, "Müller, Jörg");
    assert_eq!(r.creators[0].affiliation, "Universität Bremen");
    assert_eq!(r.publication_year, 1998);
    assert_eq!(r.updated_at, "2011");
    assert_eq!(
        r.resource_type, "Dataset",
        "resourceTypeGeneral when the text is empty"
    );
    assert!(r.keywords[0].chars().count() <= record::MAX_TERM_CHARS);
    assert!(r.keywords[0].starts_with("ice cores; stable isotopes"));
    assert!(!r.keywords[0].ends_with(';'));
    assert_eq!(r.keywords[1], "glaciology");
    assert_eq!(r.license, "", "free rights text is not a license");
    assert_eq!(r.rights[0].statement, "All rights reserved");
    let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
    for expected in [
        "title: removed 1 control character",
        "creators[0].name: whitespace collapsed",
        "creators[0].affiliation: whitespace collapsed",
        "publication_year: `[1998?]` read as 1998",
        "updated_at: `2011-00-00` read as 2011",
        "keywords[0]: ",
    ] {
        assert!(
            said.iter().any(|s| s.starts_with(expected)),
            "{expected} in {said:#?}"
        );
    }
    assert_eq!(said.len(), 6, "{said:#?}");
}

#[test]
fn what_cannot_be_made_valid_is_refused_with_field_and_line() {
    let items = items(MESSY, Format::DataciteXml);
    assert_eq!(items[2].line, 93);
    match &items[2].outcome {
        Outcome::Refused(e) => assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("title", "is required")
        ),
        other => panic!("{other:?}"),
    }
    let bad_year = MESSY.replace(
        "<publicationYear>2021</publicationYear>",
        "<publicationYear>next year</publicationYear>",
    );
    match &self::items(&bad_year, Format::DataciteXml)[0].outcome {
        Outcome::Refused(e) => {
            assert_eq!(e.field, "publication_year");
            assert!(e.reason.contains("`next year` is not a date"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let bad_box = MESSY.replace(
        "<westBoundLongitude>-60.5<",
        "<westBoundLongitude>sixty west<",
    );
    match &self::items(&bad_box, Format::DataciteXml)[0].outcome {
        Outcome::Refused(e) => assert_eq!(e.field, "spatial[0].west"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn export_then_import_gives_back_the_record_in_xml_and_json() {
    for item in items(MESSY, Format::DataciteXml).iter().take(2) {
        let mut original = record(item).record.clone();
        original.origin = "polar-dc".into();
        let xml = datacite::to_xml(&original);
        let again = items(&xml, Format::DataciteXml);
        let back = record(&again[0]);
        assert_eq!(
            back.record,
            DatasetRecord {
                origin: String::new(),
                ..original.clone()
            },
            "{xml}"
        );
        assert!(back.changes.is_empty(), "{:?}", back.changes);
        let json = datacite::to_json(&original).to_string();
        let back = read_datacite_json(&json).unwrap();
        assert_eq!(
            back.record,
            DatasetRecord {
                origin: String::new(),
                ..original
            },
            "{json}"
        );
    }
}

#[test]
fn datacite_json_of_the_rest_api_is_read() {
    let line = r#"{"data":{"id":"10.5061/dryad.8515","type":"dois","attributes":{
        "doi":"10.5061/DRYAD.8515","url":"https://datadryad.org/stash/dataset/doi:10.5061/dryad.8515",
        "creators":[{"name":"Ollomo, Benjamin","nameType":"Personal","givenName":"Benjamin","familyName":"Ollomo",
            "affiliation":[{"name":"Centre International de Recherches Médicales de Franceville"}],
            "nameIdentifiers":[{"nameIdentifier":"https://orcid.org/0000-0002-1694-233X","nameIdentifierScheme":"ORCID"}]},
            {"nameType":"Personal","givenName":"Franck","familyName":"Prugnolle","affiliation":[]}],
        "titles":[{"title":"Data from: A new malaria agent in African hominids."}],
        "publisher":{"name":"Dryad"},"publicationYear":"2011",
        "types":{"resourceTypeGeneral":"Dataset","resourceType":"dataset"},
        "subjects":[{"subject":"Plasmodium"},{"subject":"FOS: Biological sciences","subjectScheme":"Fields of Science and Technology (FOS)"}],
        "dates":[{"date":"2011","dateType":"Issued"},{"date":"2015-03-05T17:45:12Z","dateType":"Updated"}],
        "sizes":["107328 bytes"],"formats":["text/plain"],
        "rightsList":[{"rights":"Creative Commons Zero v1.0 Universal","rightsUri":"https://creativecommons.org/publicdomain/zero/1.0/legalcode"}],
        "descriptions":[{"description":"Plasmodium falciparum is the major human malaria agent.","descriptionType":"Abstract"}],
        "geoLocations":[{"geoLocationPoint":{"pointLatitude":"-1.6","pointLongitude":13.6}}]}}}"#;
    let line = line.replace('\n', " ");
    let Converted { record: r, changes } = read_datacite_json(&line).unwrap();
    assert_eq!(r.id, "10.5061/dryad.8515");
    assert_eq!(r.publisher, "Dryad");
    assert_eq!(r.publication_year, 2011);
    assert_eq!(r.creators[0].orcid, "0000-0002-1694-233X");
    assert_eq!(
        r.creators[0].affiliation,
        "Centre International de Recherches Médicales de Franceville"
    );
    assert_eq!(r.creators[1].name, "Prugnolle, Franck");
    assert_eq!(r.license, "CC0-1.0");
    assert_eq!(r.disciplines, ["Biological sciences"]);
    assert_eq!(r.keywords, ["Plasmodium"]);
    assert_eq!(r.size_bytes, 107_328);
    assert_eq!(r.updated_at, "2015-03-05T17:45:12Z");
    assert!(r.spatial.is_empty());
    assert_eq!(
        r.geo_points,
        [GeoPoint {
            longitude: 13.6,
            latitude: -1.6
        }]
    );
    assert!(r.landing_url.starts_with("https://datadryad.org/"));
    assert!(changes.is_empty(), "{changes:?}");
    for (bad, field) in [
        ("[1,2]", "json"),
        ("{\"doi\": 5", "json"),
        (
            r#"{"doi":"10.1/x","titles":[{"title":"T"}],"publisher":"P","publicationYear":2020,"types":{"resourceTypeGeneral":"Dataset"}}"#,
            "creators",
        ),
        (r#"{"titles":[{"title":"T"}]}"#, "id"),
    ] {
        assert_eq!(read_datacite_json(bad).unwrap_err().field, field, "{bad}");
    }
    let huge = format!("{{\"doi\":\"{}\"}}", "x".repeat(record::MAX_LINE_BYTES));
    assert!(read_datacite_json(&huge)
        .unwrap_err()
        .reason
        .contains("at most"));
}

const DC_PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">
<responseDate>2024-05-01T00:00:00Z</responseDate>
<ListRecords>
<record><header><identifier>oai:dspace.example.edu:123456789/42</identifier><datestamp>2024-04-30</datestamp><setSpec>com_1</setSpec></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>Groundwater nitrate survey, Lower Saxony</dc:title>
<dc:creator>Becker, Lena</dc:creator><dc:creator>Weber, Jonas</dc:creator>
<dc:subject>nitrate</dc:subject><dc:subject>groundwater</dc:subject>
<dc:description>Nitrate in 312 wells.</dc:description>
<dc:publisher>Leibniz Universität Hannover</dc:publisher>
<dc:date>2016-00-00</dc:date>
<dc:type>Dataset</dc:type><dc:type>info:eu-repo/semantics/other</dc:type>
<dc:format>text/csv</dc:format><dc:format>5242880 bytes</dc:format>
<dc:identifier>https://doi.org/10.25835/0042</dc:identifier>
<dc:identifier>https://data.uni-hannover.de/dataset/nitrate</dc:identifier>
<dc:coverage>westlimit=6.6; southlimit=51.3; eastlimit=11.6; northlimit=53.9</dc:coverage>
<dc:coverage>2014-01-01/2015-12-31</dc:coverage>
<dc:rights>CC-BY-4.0</dc:rights><dc:rights>info:eu-repo/semantics/openAccess</dc:rights>
</oai_dc:dc></metadata></record>
<record><header status="deleted"><identifier>oai:dspace.example.edu:123456789/7</identifier><datestamp>2024-04-29</datestamp></header></record>
<record><header><identifier>oai:dspace.example.edu:123456789/43</identifier><datestamp>2024-04-30</datestamp></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>No publisher here</dc:title><dc:creator>X</dc:creator><dc:date>2020</dc:date><dc:type>Dataset</dc:type>
</oai_dc:dc></metadata></record>
<resumptionToken completeListSize="3" cursor="0"></resumptionToken>
</ListRecords></OAI-PMH>"#;

#[test]
fn oai_dc_maps_loosely_and_keeps_the_oai_identifier_as_id() {
    let mut reader = XmlRecords::new(DC_PAGE.as_bytes(), Format::OaiDc);
    let items: Vec<Item> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(items.len(), 3);
    let Converted { record: r, changes } = record(&items[0]);
    assert_eq!(r.id, "oai:dspace.example.edu:123456789/42");
    assert_eq!(r.doi, "10.25835/0042");
    assert_eq!(
        r.landing_url,
        "https://data.uni-hannover.de/dataset/nitrate"
    );
    assert_eq!(r.creators.len(), 2);
    assert_eq!(r.keywords, ["nitrate", "groundwater"]);
    assert_eq!(r.publication_year, 2016);
    assert_eq!(r.resource_type, "Dataset");
    assert_eq!(r.formats, ["text/csv"]);
    assert_eq!(r.size_bytes, 5_242_880);
    assert_eq!(
        r.spatial[0],
        BoundingBox {
            west: 6.6,
            south: 51.3,
            east: 11.6,
            north: 53.9
        }
    );
    assert_eq!(r.temporal.as_ref().unwrap().end, "2015-12-31");
    assert_eq!(
        (r.license.as_str(), r.access),
        ("CC-BY-4.0", Access::Open as i32)
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(items[1].outcome, Outcome::Deleted);
    assert_eq!(
        items[1].header.as_ref().unwrap().identifier,
        "oai:dspace.example.edu:123456789/7"
    );
    match &items[2].outcome {
        Outcome::Refused(e) => assert_eq!(e.field, "publisher"),
        other => panic!("{other:?}"),
    }
    assert_eq!(reader.envelope().resumption_token.as_deref(), Some(""));
}

#[test]
fn format_names_read_back() {
    for name in Format::NAMES {
        assert_eq!(name.parse::<Format>().unwrap().name(), name);
    }
    assert!("marc"
        .parse::<Format>()
        .unwrap_err()
        .contains("datacite-xml"));
}

const RICH: &str = include_str!("../../../../tests/fixtures/datacite/rich.xml");

#[test]
fn a_rich_record_keeps_every_v2_property_and_exports_it_back() {
    let items = items(RICH, Format::DataciteXml);
    let Converted { record: r, changes } = record(&items[0]);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(r.keywords, ["ocean temperature", "salinity"]);
    assert_eq!(r.subjects.len(), 4);
    assert_eq!(r.subjects[1].classification_code, "0105");
    assert!(r.subjects[3].value_uri.ends_with("/TEMP/"));
    assert_eq!(r.disciplines, ["Earth and related environmental sciences"]);
    assert_eq!(r.updated_at, "2024-06-15T09:30:00Z");
    let t = r.temporal.as_ref().unwrap();
    assert_eq!(
        (t.start.as_str(), t.end.as_str()),
        ("1990-08-01", "2023-07-31")
    );
    let dates: Vec<(&str, &str, &str)> = r
        .dates
        .iter()
        .map(|d| {
            (
                d.date.as_str(),
                d.date_type.as_str(),
                d.information.as_str(),
            )
        })
        .collect();
    assert_eq!(
        dates,
        [
            ("2023-11-30", "Created", ""),
            ("2024-02-01", "Issued", "First public release"),
            ("1990/", "Coverage", ""),
            ("2024-01-01/2026-12-31", "Valid", ""),
            ("2015-09-10", "Other", "Instrument recalibration"),
        ]
    );
    assert_eq!(r.language, "en-US");
    assert_eq!(r.dataset_version, "2.1");
    assert_eq!(
        r.landing_url,
        "https://ads.nipr.ac.jp/dataset/A20240201-001"
    );
    assert_eq!(r.alternate_identifiers.len(), 2);
    assert_eq!(r.related_identifiers.len(), 4);
    assert_eq!(r.related_identifiers[1].resource_type_general, "");
    assert_eq!(r.funding_references.len(), 3);
    assert_eq!(
        r.funding_references[1].funder_identifier_type,
        "Crossref Funder ID"
    );
    assert_eq!(r.license, "CC-BY-4.0");
    assert_eq!(r.access, Access::Open as i32);
    assert_eq!(r.rights.len(), 2);
    assert_eq!(r.geo_places, ["Bering Strait", "Chukchi Sea"]);
    assert_eq!(r.geo_points.len(), 2);
    assert_eq!(r.spatial.len(), 1);
    assert_eq!(r.geo_polygons.len(), 2);
    assert_eq!(r.geo_polygons[1].points[1].longitude, -175.5);

    // Export and import again, in XML and in JSON: the same record.
    let xml = datacite::to_xml(r);
    let again = items_of(&xml);
    assert_eq!(&again.record, r, "{xml}");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let json = datacite::to_json(r).to_string();
    let back = read_datacite_json(&json).unwrap();
    assert_eq!(&back.record, r, "{json}");
    assert!(back.changes.is_empty(), "{:?}", back.changes);
}

fn items_of(xml: &str) -> Converted {
    let items = items(xml, Format::DataciteXml);
    record(&items[0]).clone()
}

#[test]
fn oai_dc_keeps_language_relations_and_rights_statements() {
    let dc = r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:identifier>https://doi.org/10.1234/lake.7</dc:identifier><dc:title>Lake sediment cores</dc:title>
<dc:creator>Ramos, Ana</dc:creator><dc:publisher>Repo</dc:publisher><dc:date>2011</dc:date><dc:type>Dataset</dc:type>
<dc:language>English</dc:language><dc:language>pt-BR</dc:language>
<dc:relation>doi:10.5555/paper.1</dc:relation><dc:relation>https://example.org/related</dc:relation><dc:relation>Lake Project</dc:relation>
<dc:rights>info:eu-repo/semantics/openAccess</dc:rights><dc:rights>Free to reuse with attribution</dc:rights>
<dc:rights>https://creativecommons.org/licenses/by/4.0/</dc:rights>
</oai_dc:dc>"#;
    let items = items(dc, Format::OaiDc);
    let Converted { record: r, changes } = record(&items[0]);
    assert_eq!(r.language, "pt-BR");
    assert!(changes
        .iter()
        .any(|c| c.to_string().starts_with("language: `English`")));
    let related: Vec<(&str, &str, &str)> = r
        .related_identifiers
        .iter()
        .map(|x| {
            (
                x.identifier.as_str(),
                x.identifier_type.as_str(),
                x.relation_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        related,
        [
            ("10.5555/paper.1", "DOI", "References"),
            ("https://example.org/related", "URL", "References"),
        ]
    );
    assert_eq!(r.project, "Lake Project");
    assert_eq!(r.access, Access::Open as i32);
    assert_eq!(r.rights.len(), 2);
    assert_eq!(r.rights[0].statement, "Free to reuse with attribution");
    assert_eq!(
        r.rights[1].uri,
        "https://creativecommons.org/licenses/by/4.0/"
    );
    assert_eq!(r.license, "CC-BY-4.0", "named by the Creative Commons URI");
}

mod v2_round_trip {
    //! Any valid record with record-model-v2 fields comes back whole from
    //! DataCite XML, DataCite JSON and JSON Lines.

    use proptest::prelude::*;

    use super::*;
    use crate::proto::{
        AlternateIdentifier, FundingReference, GeoPolygon, RelatedIdentifier, Rights, Subject,
        TypedDate,
    };

    fn maybe(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), strategy]
    }

    fn words() -> impl Strategy<Value = String> {
        "[A-Za-z]{1,8}( [A-Za-z]{1,8}){0,2}"
    }

    fn subject() -> impl Strategy<Value = Subject> {
        (
            words(),
            prop::sample::select(vec!["GCMD", "Wikidata", "ANZSRC 2020"]),
            maybe("https://vocab\\.example\\.org/[a-z]{1,8}"),
            maybe("https://vocab\\.example\\.org/c/[0-9]{1,6}"),
            maybe("[0-9]{2,6}"),
        )
            .prop_map(
                |(value, scheme, scheme_uri, value_uri, classification_code)| Subject {
                    value,
                    scheme: scheme.to_owned(),
                    scheme_uri,
                    value_uri,
                    classification_code,
                },
            )
    }

    fn related() -> impl Strategy<Value = RelatedIdentifier> {
        (
            "[a-z0-9][a-z0-9./:]{0,20}",
            prop::sample::select(record::RELATED_IDENTIFIER_TYPES.to_vec()),
            prop::sample::select(record::RELATION_TYPES.to_vec()),
            prop::sample::select([&[""][..], record::RESOURCE_TYPES].concat()),
        )
            .prop_map(|(identifier, kind, relation, general)| RelatedIdentifier {
                identifier,
                identifier_type: kind.to_owned(),
                relation_type: relation.to_owned(),
                resource_type_general: general.to_owned(),
            })
    }

    fn funding() -> impl Strategy<Value = FundingReference> {
        (
            words(),
            prop::option::of((
                "https://ror\\.org/0[a-z0-9]{8}",
                prop::sample::select(record::FUNDER_IDENTIFIER_TYPES.to_vec()),
            )),
            maybe("[A-Z0-9/-]{1,12}"),
            maybe("https://grants\\.example\\.org/[0-9]{1,6}"),
            maybe(words()),
        )
            .prop_map(
                |(funder_name, identifier, award_number, award_uri, award_title)| {
                    let (funder_identifier, kind) = identifier.unwrap_or_default();
                    FundingReference {
                        funder_name,
                        funder_identifier,
                        funder_identifier_type: kind.to_owned(),
                        award_number,
                        award_uri,
                        award_title,
                    }
                },
            )
    }

    fn point() -> impl Strategy<Value = GeoPoint> {
        (-180.0f64..=180.0, -90.0f64..=90.0).prop_map(|(longitude, latitude)| GeoPoint {
            longitude,
            latitude,
        })
    }

    fn polygon() -> impl Strategy<Value = GeoPolygon> {
        prop::collection::vec(point(), 3..7).prop_map(|mut points| {
            points.push(points[0]);
            GeoPolygon { points }
        })
    }

    fn date() -> impl Strategy<Value = TypedDate> {
        let day = "(19[0-9]{2}|20[0-2][0-9])(-0[1-9]-1[0-9])?";
        (
            prop_oneof![
                day.prop_map(|d| d),
                (day, day).prop_map(|(a, b)| format!("{a}/{b}")),
                day.prop_map(|d| format!("{d}/")),
            ],
            prop::sample::select(record::DATE_TYPES.to_vec()),
            maybe(words()),
        )
            .prop_map(|(date, kind, information)| {
                // A plain Updated, Collected or Available date has a field of its own.
                let own = matches!(kind, "Updated" | "Collected" | "Available");
                TypedDate {
                    date,
                    date_type: kind.to_owned(),
                    information: if own && information.is_empty() {
                        "as stated".to_owned()
                    } else {
                        information
                    },
                }
            })
    }

    fn rights() -> impl Strategy<Value = Rights> {
        (
            "[A-Z][a-z]{1,10}( [a-z]{1,10}){0,3}\\.",
            maybe("https://terms\\.example\\.org/[a-z]{1,8}"),
            maybe("[a-z]{3,8}-terms"),
        )
            .prop_map(|(statement, uri, identifier)| Rights {
                statement,
                uri,
                identifier,
                ..Default::default()
            })
    }

    fn alternate() -> impl Strategy<Value = AlternateIdentifier> {
        (
            "[A-Z]{1,3}-[0-9]{1,5}",
            prop::sample::select(vec!["Local", "ARK", "Handle", "ADS accession"]),
        )
            .prop_map(|(identifier, kind)| AlternateIdentifier {
                identifier,
                identifier_type: kind.to_owned(),
            })
    }

    prop_compose! {
        fn a_v2_record()(
            subjects in prop::collection::vec(subject(), 0..4),
            related_identifiers in prop::collection::vec(related(), 0..4),
            funding_references in prop::collection::vec(funding(), 0..3),
            geo_points in prop::collection::vec(point(), 0..3),
            geo_polygons in prop::collection::vec(polygon(), 0..3),
            geo_places in prop::collection::vec(words(), 0..3),
            dates in prop::collection::vec(date(), 0..4),
            rights in prop::collection::vec(rights(), 0..3),
            alternate_identifiers in prop::collection::vec(alternate(), 0..3),
            dataset_version in maybe("[0-9]{1,2}\\.[0-9]{1,2}"),
            language in prop::sample::select(vec!["", "en", "pt-BR", "de", "zh-Hant-TW"]),
        ) -> DatasetRecord {
            let base = record::parse_json_line(&crate::test_support::rich_record_line(
                "BS-1", "Bering Strait moorings", "public",
            ))
            .unwrap();
            DatasetRecord {
                subjects, related_identifiers, funding_references, geo_points, geo_polygons,
                geo_places, dates, rights, alternate_identifiers, dataset_version,
                language: language.to_owned(),
                // DataCite does not carry the visibility: the node sets it.
                visibility: 0,
                ..base
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn datacite_and_json_lines_give_back_every_v2_field(original in a_v2_record()) {
            prop_assert_eq!(record::validate(&original), Ok(()));
            let line = record::to_json(&original).to_string();
            prop_assert_eq!(record::parse_json_line(&line), Ok(original.clone()));

            let xml = datacite::to_xml(&original);
            let items = items(&xml, Format::DataciteXml);
            let back = record(&items[0]);
            prop_assert_eq!(&back.record, &original, "{}", xml);
            prop_assert!(back.changes.is_empty(), "{:?}", back.changes);

            let json = datacite::to_json(&original).to_string();
            let back = read_datacite_json(&json).unwrap();
            prop_assert_eq!(&back.record, &original, "{}", json);
            prop_assert!(back.changes.is_empty(), "{:?}", back.changes);
        }
    }
}

#[test]
fn v2_values_datacite_does_not_know_are_reported_and_left_out() {
    let rich = RICH
        .replace(
            r#"relationType="IsSupplementTo""#,
            r#"relationType="IsRelatedTo""#,
        )
        .replace(r#"dateType="Created""#, r#"dateType="Published""#)
        .replace(
            r#"funderIdentifierType="ROR""#,
            r#"funderIdentifierType="Wikidata""#,
        )
        .replace(
            "<funderName>Bering Strait Moorings Consortium</funderName>",
            "<funderName> </funderName>",
        );
    let items = items(&rich, Format::DataciteXml);
    let Converted { record: r, changes } = record(&items[0]);
    let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
    for expected in [
        "related_identifiers[1]: `https://www.pmel.noaa.gov/arctic-zone/bering-strait`: `URL` / `IsRelatedTo` are not DataCite's",
        "dates: `Published` is not a DataCite date type",
        "funding_references[0].funder_identifier: `https://ror.org/00hhkn466` has no DataCite funder identifier type",
        "funding_references[2]: a funding reference without a funder name is not kept",
    ] {
        assert!(
            said.iter().any(|s| s.starts_with(expected)),
            "{expected} in {said:#?}"
        );
    }
    assert_eq!(said.len(), 4, "{said:#?}");
    assert_eq!(r.related_identifiers.len(), 3);
    assert_eq!(r.dates.len(), 4);
    assert_eq!(r.funding_references.len(), 2);
    assert_eq!(r.funding_references[0].funder_identifier, "");
    assert_eq!(r.funding_references[0].funder_identifier_type, "");
    assert_eq!(r.funding_references[0].award_number, "22H05201");
}

/// An OAI identifier or datestamp past its bound refuses its record,
/// named by line (the identifier is not kept), and the page reads on.
#[test]
fn an_overlong_oai_header_refuses_its_record_by_line() {
    let long = "x".repeat(tree::MAX_HEADER_VALUE_BYTES + 1);
    let dc = r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title></oai_dc:dc>"#;
    let doc = format!(
        r#"<OAI-PMH><ListRecords>
<record><header><identifier>{long}</identifier><datestamp>2024-01-01</datestamp></header><metadata>{dc}</metadata></record>
<record><header status="deleted"><identifier>{long}</identifier><datestamp>2024-01-01</datestamp></header></record>
<record><header><identifier>oai:x:3</identifier><datestamp>{long}</datestamp></header><metadata>{dc}</metadata></record>
<record><header status="deleted"><identifier>oai:x:4</identifier><datestamp>2024-01-01</datestamp></header></record>
</ListRecords></OAI-PMH>"#
    );
    let items = items(&doc, Format::OaiDc);
    assert_eq!(items.len(), 4, "{items:?}");
    for (item, line, what) in [
        (&items[0], 2, "identifier"),
        (&items[1], 3, "identifier"),
        (&items[2], 4, "datestamp"),
    ] {
        assert_eq!(item.line, line);
        assert_eq!(
            item.header, None,
            "line {line}: the over-long header is not kept"
        );
        match &item.outcome {
            Outcome::Refused(e) => {
                assert_eq!(e.field, "header", "line {line}");
                assert!(e.reason.contains(what), "line {line}: {e:?}");
                assert!(
                    e.reason.contains(&tree::MAX_HEADER_VALUE_BYTES.to_string()),
                    "line {line}: {e:?}"
                );
            }
            other => panic!("line {line}: {other:?}"),
        }
    }
    assert_eq!(items[3].outcome, Outcome::Deleted);
    assert_eq!(items[3].header.as_ref().unwrap().identifier, "oai:x:4");
}

/// A bug that panics while a record is converted refuses that record,
/// by line, and the records after it are read.
#[test]
fn a_panic_converting_one_record_refuses_that_record_only() {
    let error = guarded(|| panic!("byte index 10 is not a char boundary")).unwrap_err();
    assert_eq!(error.field, "record");
    assert!(
        error.reason.contains("internal error (byte index 10"),
        "{error}"
    );
    let fine = guarded(|| Ok(DatasetRecord::default()));
    assert_eq!(fine, Ok(DatasetRecord::default()));
}

/// Dates in other scripts once panicked in `fix_date`: such a record is
/// refused (DataCite) or its date skipped (Dublin Core), never a panic.
#[test]
fn dates_in_other_scripts_refuse_the_record_and_the_next_is_read() {
    let dc = |date: &str, title: &str| {
        format!(
            r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier>id-{title}</dc:identifier><dc:title>{title}</dc:title><dc:creator>X</dc:creator><dc:publisher>P</dc:publisher><dc:date>{date}</dc:date><dc:type>Dataset</dc:type></oai_dc:dc>"#
        )
    };
    let doc = format!(
        "<all>{}\n{}\n{}</all>",
        dc("平成30年3月4日", "a"),
        dc("2018年03月04日 10時", "b"),
        dc("2018", "c")
    );
    let items = items(&doc, Format::OaiDc);
    assert_eq!(items.len(), 3);
    for item in &items[..2] {
        match &item.outcome {
            Outcome::Refused(e) => {
                assert_eq!(e.field, "publication_year", "{e}");
                assert!(e.reason.contains("is not a date"), "{e}");
            }
            other => panic!("line {}: {other:?}", item.line),
        }
    }
    assert_eq!(record(&items[2]).record.publication_year, 2018);
}

/// A Dublin Core record without a DOI takes its first identifier that is
/// not a URL as id, but never an ISSN or ISBN: the journal or book it
/// appeared in, which other records share.
#[test]
fn a_dc_record_never_takes_a_journals_issn_as_its_id() {
    let dc = |identifiers: &str| {
        format!(
            r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">{identifiers}<dc:title>T</dc:title><dc:creator>X</dc:creator><dc:publisher>P</dc:publisher><dc:date>2018</dc:date><dc:type>Dataset</dc:type></oai_dc:dc>"#
        )
    };
    for serial in [
        "1866-3516",
        "urn:issn:0028-0836",
        "ISBN:978-3-16-148410-0",
        "0-306-40615-2",
    ] {
        let doc = dc(&format!(
            "<dc:identifier>{serial}</dc:identifier><dc:identifier>repo-item-42</dc:identifier>"
        ));
        let items = items(&doc, Format::OaiDc);
        assert_eq!(record(&items[0]).record.id, "repo-item-42", "{serial}");
    }
    // A number that merely looks like one (its check digit is wrong) is
    // an id as any other.
    // So is a plain number of ten digits with a valid ISBN check digit,
    // and a 13-digit one without 978 or 979.
    for id in ["2018-0042", "0306406152", "1234567890128"] {
        let looks_like = items(
            &dc(&format!("<dc:identifier>{id}</dc:identifier>")),
            Format::OaiDc,
        );
        assert_eq!(record(&looks_like[0]).record.id, id);
    }
    // Alone, it gives no id: the record is refused, naming the field.
    let alone = items(
        &dc("<dc:identifier>1866-3516</dc:identifier>"),
        Format::OaiDc,
    );
    match &alone[0].outcome {
        Outcome::Refused(e) => assert_eq!(e.field, "id", "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A publication year is the year of the date as written: a time late on
/// New Year's Eve with an offset west of UTC is not of the next year.
#[test]
fn a_publication_year_is_the_year_the_date_was_written_in() {
    let dc = |date: &str| {
        format!(
            r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier>id-1</dc:identifier><dc:title>T</dc:title><dc:creator>X</dc:creator><dc:publisher>P</dc:publisher><dc:date>{date}</dc:date><dc:type>Dataset</dc:type></oai_dc:dc>"#
        )
    };
    for (date, year) in [
        ("2020-12-31T20:00:00-05:00", 2020),
        ("2021-01-01T02:00:00+09:00", 2021),
        ("2020-05", 2020),
        ("2019", 2019),
    ] {
        let items = items(&dc(date), Format::OaiDc);
        assert_eq!(record(&items[0]).record.publication_year, year, "{date}");
    }
}

/// dc:coverage is free text: a place or a URI with a `/` is not a period
/// and is skipped with a note (it refused the record: "temporal.start:
/// `http:` is not a date"), and a DCMI Box ending in `;` is read (it was
/// dropped without a word).
#[test]
fn dc_coverage_that_is_not_a_period_is_noted_and_a_box_may_end_in_a_semicolon() {
    let dc = |coverage: &str| {
        format!(
            r#"<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier>id-1</dc:identifier><dc:title>T</dc:title><dc:creator>X</dc:creator><dc:publisher>P</dc:publisher><dc:date>2018</dc:date><dc:type>Dataset</dc:type>{coverage}</oai_dc:dc>"#
        )
    };
    let doc = dc(
        "<dc:coverage>http://sws.geonames.org/2635167/</dc:coverage>\
        <dc:coverage>Norway/Sweden</dc:coverage>\
        <dc:coverage>westlimit=6.6; southlimit=51.3; eastlimit=11.6; northlimit=53.9;</dc:coverage>\
        <dc:coverage>2014-01-01/2015-12-31</dc:coverage>",
    );
    let found = items(&doc, Format::OaiDc);
    let Converted { record: r, changes } = record(&found[0]);
    assert_eq!(
        r.spatial,
        [BoundingBox {
            west: 6.6,
            south: 51.3,
            east: 11.6,
            north: 53.9
        }]
    );
    let t = r.temporal.as_ref().unwrap();
    assert_eq!(
        (t.start.as_str(), t.end.as_str()),
        ("2014-01-01", "2015-12-31")
    );
    let notes: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0]
            .starts_with("temporal: coverage `http://sws.geonames.org/2635167/` is not a period"),
        "{notes:?}"
    );
    assert!(notes[1].contains("`Norway/Sweden`"), "{notes:?}");
    // What is not a period is kept as a place, as this node's export
    // writes places.
    assert_eq!(
        r.geo_places,
        ["http://sws.geonames.org/2635167/", "Norway/Sweden"]
    );
    let places = items(
        &dc("<dc:coverage>Svalbard</dc:coverage>             <dc:coverage>name=Ny-Ålesund; east=11.92; north=78.92</dc:coverage>"),
        Format::OaiDc,
    );
    let Converted { record: r, changes } = record(&places[0]);
    assert_eq!(r.geo_places, ["Svalbard"]);
    assert_eq!(
        r.geo_points,
        [GeoPoint {
            longitude: 11.92,
            latitude: 78.92
        }]
    );
    assert!(changes.is_empty(), "{changes:?}");
    // A date or a DCMI Period is a period, not a place; a point not in
    // degrees, or past the bound on points, is noted and the record kept.
    for (coverage, start, end) in [
        ("2019", "2019", "2019"),
        ("start=2010; end=2020; scheme=W3C-DTF", "2010", "2020"),
    ] {
        let found = items(
            &dc(&format!("<dc:coverage>{coverage}</dc:coverage>")),
            Format::OaiDc,
        );
        let r = &record(&found[0]).record;
        assert!(r.geo_places.is_empty(), "{coverage}: {:?}", r.geo_places);
        let t = r.temporal.as_ref().unwrap();
        assert!(
            t.start.starts_with(start) && t.end.starts_with(end),
            "{coverage}: {t:?}"
        );
    }
    let many: String = (0..=record::MAX_GEO_POINTS)
        .map(|n| format!("<dc:coverage>east={}; north=10</dc:coverage>", n % 180))
        .collect();
    let found = items(
        &dc(&format!(
            "<dc:coverage>east=500000; north=6600000; projection=UTM zone 33N</dc:coverage>{many}"
        )),
        Format::OaiDc,
    );
    let Converted { record: r, changes } = record(&found[0]);
    assert_eq!(r.geo_points.len(), record::MAX_GEO_POINTS);
    let notes: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("not a DCMI Point in degrees"),
        "{notes:?}"
    );
    assert!(notes[1].contains("more than 100 points"), "{notes:?}");
    // A box that cannot be read is noted too, not dropped without a word.
    let bad_box = items(
        &dc("<dc:coverage>westlimit=x; southlimit=1; eastlimit=2; northlimit=3</dc:coverage>"),
        Format::OaiDc,
    );
    let Converted { record: r, changes } = record(&bad_box[0]);
    assert!(r.spatial.is_empty());
    assert!(
        changes[0].to_string().contains("not a DCMI Box"),
        "{changes:?}"
    );
}

/// A minimal DataCite resource in namespace `ns` holding `extra`.
fn resource(ns: &str, extra: &str) -> String {
    format!(
        r#"<resource xmlns="{ns}"><identifier identifierType="DOI">10.1234/k3.1</identifier><creators><creator><creatorName>Ruiz, Ana</creatorName></creator></creators><titles><title>Gulf of Maine CTD casts</title></titles><publisher>WHOI</publisher><publicationYear>2012</publicationYear><resourceType resourceTypeGeneral="Dataset">Dataset</resourceType>{extra}</resource>"#
    )
}

/// Kernel 3 writes geolocations as text (`<geoLocationBox>south west
/// north east</geoLocationBox>`, `<geoLocationPoint>lat lon</…>`); only
/// kernel 4's child elements were read, and such a record was refused
/// ("spatial[0].west: `` is not a number").
#[test]
fn kernel_3_geolocations_are_read() {
    let xml = resource(
        "http://datacite.org/schema/kernel-3",
        "<geoLocations><geoLocation><geoLocationPoint>31.233 -67.302</geoLocationPoint>\
         <geoLocationBox>41.090 -71.032 42.893 -68.211</geoLocationBox>\
         <geoLocationPlace>Gulf of Maine</geoLocationPlace></geoLocation></geoLocations>",
    );
    let Converted { record: r, changes } = items_of(&xml);
    assert_eq!(
        r.spatial,
        [BoundingBox {
            west: -71.032,
            south: 41.090,
            east: -68.211,
            north: 42.893
        }]
    );
    assert_eq!(
        r.geo_points,
        [GeoPoint {
            longitude: -67.302,
            latitude: 31.233
        }]
    );
    assert_eq!(r.geo_places, ["Gulf of Maine"]);
    assert!(changes.is_empty(), "{changes:?}");
    // A kernel-3 box of three values is refused, naming what it holds.
    let bad = resource(
        "http://datacite.org/schema/kernel-3",
        "<geoLocations><geoLocation><geoLocationBox>41.090 -71.032 42.893</geoLocationBox></geoLocation></geoLocations>",
    );
    match &items(&bad, Format::DataciteXml)[0].outcome {
        Outcome::Refused(e) => {
            assert_eq!(e.field, "spatial[0].west");
            assert!(e.reason.contains("`41.090 -71.032 42.893`"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// DataCite's `language` is an `xs:language`, which `English` is; the
/// model holds BCP 47 tags. Such a value refused the whole record; it is
/// left out with a note, as the Dublin Core mapping does.
#[test]
fn a_datacite_language_that_is_not_a_tag_is_noted_not_fatal() {
    let xml = resource(datacite::NAMESPACE, "<language>English</language>");
    let Converted { record: r, changes } = items_of(&xml);
    assert_eq!(r.language, "");
    let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        ["language: `English` is not a language tag (BCP 47); not kept"]
    );
    let xml = resource(datacite::NAMESPACE, "<language>de-AT</language>");
    assert_eq!(items_of(&xml).record.language, "de-AT");
}

/// Embargoed access without a usable `Available` date refused the record
/// ("embargo_until: is required"); as for Dublin Core, access is left
/// unset, reported, and the rest kept.
#[test]
fn embargoed_access_without_a_usable_end_leaves_access_unset() {
    let embargoed = r#"<rightsList><rights rightsURI="info:eu-repo/semantics/embargoedAccess"/><rights rightsURI="https://creativecommons.org/licenses/by/4.0/"/></rightsList>"#;
    for dates in [
        "",
        r#"<dates><date dateType="Available">after the cruise</date></dates>"#,
    ] {
        let xml = resource(datacite::NAMESPACE, &format!("{embargoed}{dates}"));
        let Converted { record: r, changes } = items_of(&xml);
        assert_eq!(r.access, Access::Unspecified as i32, "{dates}");
        assert_eq!(r.embargo_until, "");
        assert_eq!(r.license, "CC-BY-4.0");
        let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert!(
            said.last()
                .is_some_and(|s| s.starts_with("access: embargoed access without an end date")),
            "{dates}: {said:?}"
        );
        if !dates.is_empty() {
            assert!(
                said[0].starts_with("embargo_until: `after the cruise` is not a date"),
                "{said:?}"
            );
        }
    }
    // With its end, the embargo is kept.
    let xml = resource(
        datacite::NAMESPACE,
        &format!(r#"{embargoed}<dates><date dateType="Available">2030-01-01</date></dates>"#),
    );
    let r = items_of(&xml).record;
    assert_eq!(
        (r.access, r.embargo_until.as_str()),
        (Access::Embargoed as i32, "2030-01-01")
    );
}

/// A record whose header says `deleted` is a deletion even when the
/// provider still sends its metadata: it was imported as a live record.
#[test]
fn a_deleted_header_with_metadata_is_a_deletion() {
    let page = DC_PAGE.replacen(
        "<header><identifier>oai:dspace.example.edu:123456789/42</identifier>",
        r#"<header status="deleted"><identifier>oai:dspace.example.edu:123456789/42</identifier>"#,
        1,
    );
    let items = items(&page, Format::OaiDc);
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].outcome, Outcome::Deleted);
    assert_eq!(
        items[0].header.as_ref().unwrap().identifier,
        "oai:dspace.example.edu:123456789/42"
    );
    assert_eq!(items[1].outcome, Outcome::Deleted);
}
