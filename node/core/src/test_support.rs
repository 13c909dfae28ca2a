//! What the core's unit tests share.

/// A valid JSON Lines record of the Polar Data Center with `id`, `title`
/// and `visibility` (`groups` records are in `polar-consortium`).
pub(crate) fn record_line(id: &str, title: &str, visibility: &str) -> String {
    let mut value = serde_json::json!({
        "id": id,
        "title": title,
        "creators": [{"name": "Nansen, Fridtjof"}],
        "publisher": "Polar Data Center",
        "publication_year": 2021,
        "resource_type": "Dataset",
        "license": "CC-BY-4.0",
        "access": "open",
        "visibility": visibility,
        "updated_at": "2024-01-01T00:00:00Z",
    });
    if visibility == "groups" {
        value["groups"] = serde_json::json!(["polar-consortium"]);
    }
    value.to_string()
}

/// [`record_line`] with every field of record model v2
/// (docs/decisions/record-model-v2.md) filled in.
pub(crate) fn rich_record_line(id: &str, title: &str, visibility: &str) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&record_line(id, title, visibility)).unwrap();
    let v2 = serde_json::json!({
        "landing_url": "https://ads.example.org/dataset/A-001",
        "disciplines": ["Earth and related environmental sciences"],
        "subjects": [
            {"value": "EARTH SCIENCE > OCEANS > OCEAN TEMPERATURE", "scheme": "GCMD Science Keywords",
             "scheme_uri": "https://gcmd.earthdata.nasa.gov/kms/concepts/concept_scheme/sciencekeywords",
             "value_uri": "https://gcmd.earthdata.nasa.gov/kms/concept/699bd062"},
            {"value": "FOS: Earth and related environmental sciences",
             "scheme": "Fields of Science and Technology (FOS)", "classification_code": "0105"}
        ],
        "related_identifiers": [
            {"identifier": "10.1029/2023jc020111", "identifier_type": "DOI",
             "relation_type": "IsCitedBy", "resource_type_general": "JournalArticle"},
            {"identifier": "https://www.example.org/bering", "identifier_type": "URL", "relation_type": "IsSupplementTo"}
        ],
        "funding_references": [
            {"funder_name": "Japan Society for the Promotion of Science", "funder_identifier": "https://ror.org/00hhkn466",
             "funder_identifier_type": "ROR", "award_number": "22H05201",
             "award_uri": "https://kaken.example.org/grant/22H05201", "award_title": "Arctic Challenge for Sustainability"},
            {"funder_name": "Bering Strait Moorings Consortium"}
        ],
        "geo_points": [{"longitude": -168.95, "latitude": 65.78}],
        "geo_polygons": [{"points": [
            {"longitude": 175.5, "latitude": 60.0}, {"longitude": -175.5, "latitude": 60.0},
            {"longitude": -175.5, "latitude": 63.25}, {"longitude": 175.5, "latitude": 63.25},
            {"longitude": 175.5, "latitude": 60.0}
        ]}],
        "geo_places": ["Bering Strait"],
        "dates": [
            {"date": "2023-11-30", "date_type": "Created"},
            {"date": "2024-01-01/2026-12-31", "date_type": "Valid"},
            {"date": "2015-09-10", "date_type": "Other", "information": "Instrument recalibration"}
        ],
        "rights": [
            {"statement": "Creative Commons Attribution 4.0 International",
             "uri": "https://creativecommons.org/licenses/by/4.0/legalcode", "identifier": "CC-BY-4.0",
             "identifier_scheme": "SPDX", "scheme_uri": "https://spdx.org/licenses/"},
            {"statement": "Please acknowledge the mooring programme."}
        ],
        "alternate_identifiers": [{"identifier": "A20240201-001", "identifier_type": "ADS accession"}],
        "dataset_version": "2.1",
        "language": "en-US",
    });
    for (key, field) in v2.as_object().unwrap() {
        value[key] = field.clone();
    }
    value.to_string()
}

/// A node `id` made by `Node::create` in a new temporary directory (not
/// opened): the directory to keep alive and the node's data directory.
pub(crate) fn created_node(id: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(id);
    crate::node::Node::create(&data, &id.parse().unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    (dir, data)
}

/// [`created_node`], opened with no overrides.
pub(crate) fn opened_node(id: &str) -> (std::sync::Arc<crate::node::Node>, tempfile::TempDir) {
    let (dir, data) = created_node(id);
    let node = crate::node::Node::open(&data, &std::collections::BTreeMap::new()).unwrap();
    (node, dir)
}
