use super::*;
use crate::proto::{Access, BoundingBox};

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
    assert_eq!(
        r.keywords,
        [
            "sea ice",
            "EARTH SCIENCE > CRYOSPHERE > SEA ICE > ICE DEPTH/THICKNESS"
        ]
    );
    assert_eq!(r.disciplines, ["Earth and related environmental sciences"]);
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
        [
            BoundingBox {
                west: -60.5,
                south: -75.0,
                east: -40.25,
                north: -65.5
            },
            BoundingBox {
                west: -52.1,
                south: -70.3,
                east: -52.1,
                north: -70.3
            },
        ]
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
    let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
    for expected in [
        "title: removed 1 control character",
        "creators[0].name: whitespace collapsed",
        "creators[0].affiliation: whitespace collapsed",
        "publication_year: `[1998?]` read as 1998",
        "updated_at: `2011-00-00` read as 2011",
        "keywords[0]: ",
        "license: `All rights reserved` is not an SPDX license",
    ] {
        assert!(
            said.iter().any(|s| s.starts_with(expected)),
            "{expected} in {said:#?}"
        );
    }
    assert_eq!(said.len(), 7, "{said:#?}");
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
    assert_eq!(
        r.spatial,
        [BoundingBox {
            west: 13.6,
            south: -1.6,
            east: 13.6,
            north: -1.6
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
