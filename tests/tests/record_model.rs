//! Record model v2 (`docs/decisions/record-model-v2.md`) through real
//! nodes: JSON Lines with the new fields imported and searched (subjects as
//! keywords, funders as the project, points and polygons by the spatial
//! filter), every oversize or malformed new field refused by line with its
//! name, and a record with every new field replicated to a peer over TLS,
//! verified there and held field for field, and served by the HTTP API.

use std::process::Command;
use std::time::{Duration, Instant};

use meridian_testkit::harness::{held, record_line, TestNode};
use serde_json::{json, Value};

/// `record_line` with every field of record model v2.
fn rich_line(id: &str, title: &str, visibility: &str) -> String {
    let mut value: Value = serde_json::from_str(&record_line(id, title, visibility)).unwrap();
    let v2 = json!({
        "landing_url": "https://ads.example.org/dataset/A-001",
        "disciplines": ["earth", "Earth and related environmental sciences"],
        "subjects": [
            {"value": "OCEAN TEMPERATURE", "scheme": "GCMD Science Keywords",
             "scheme_uri": "https://gcmd.earthdata.nasa.gov/kms", "value_uri": "https://gcmd.earthdata.nasa.gov/kms/concept/699bd062"},
            {"value": "FOS: Earth and related environmental sciences",
             "scheme": "Fields of Science and Technology (FOS)", "classification_code": "0105"}
        ],
        "related_identifiers": [{"identifier": "10.1029/2023jc020111", "identifier_type": "DOI",
            "relation_type": "IsCitedBy", "resource_type_general": "JournalArticle"}],
        "funding_references": [
            {"funder_name": "Japan Society for the Promotion of Science", "funder_identifier": "https://ror.org/00hhkn466",
             "funder_identifier_type": "ROR", "award_number": "22H05201",
             "award_uri": "https://kaken.example.org/grant/22H05201", "award_title": "Arctic Challenge for Sustainability"}
        ],
        "geo_points": [{"longitude": -168.95, "latitude": 65.78}],
        "geo_polygons": [{"points": [
            {"longitude": 175.5, "latitude": 60.0}, {"longitude": -175.5, "latitude": 60.0},
            {"longitude": -175.5, "latitude": 63.25}, {"longitude": 175.5, "latitude": 63.25},
            {"longitude": 175.5, "latitude": 60.0}
        ]}],
        "geo_places": ["Bering Strait"],
        "dates": [{"date": "2023-11-30", "date_type": "Created"},
                  {"date": "2015-09-10", "date_type": "Other", "information": "Instrument recalibration"}],
        "rights": [{"statement": "Please acknowledge the mooring programme."}],
        "alternate_identifiers": [{"identifier": "A20240201-001", "identifier_type": "ADS accession"}],
        "dataset_version": "2.1",
        "language": "en-US",
    });
    for (key, field) in v2.as_object().unwrap() {
        value[key] = field.clone();
    }
    value.to_string()
}

/// The rich line with `field` replaced.
fn rich_with(id: &str, field: &str, value: Value) -> String {
    let mut json: Value = serde_json::from_str(&rich_line(id, "Broken", "public")).unwrap();
    json[field] = value;
    json.to_string()
}

/// Ids `meridian search ARGS --json` finds, retried until `want` of them
/// are found (indexing is asynchronous) or 20 s pass.
fn search(node: &TestNode, args: &[&str], want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut full = vec!["search"];
        full.extend_from_slice(args);
        full.push("--json");
        let answer: Value = serde_json::from_str(&node.ok(&full)).expect("json");
        let mut ids: Vec<String> = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        if ids.len() >= want || Instant::now() > deadline {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn oversize_and_malformed_v2_fields_are_refused_by_line_with_their_name() {
    let node = TestNode::start("polar");
    let point = json!({"longitude": 1.0, "latitude": 2.0});
    let lines = [
        rich_line("GOOD-1", "Bering Strait moorings", "public"),
        rich_with(
            "BAD-2",
            "subjects",
            json!(vec![json!({"value": "v", "scheme": "S"}); 201]),
        ),
        rich_with(
            "BAD-3",
            "geo_polygons",
            json!([{"points": [point, {"longitude": 2.0, "latitude": 2.0}, {"longitude": 2.0, "latitude": 3.0}, {"longitude": 1.0, "latitude": 3.0}]}]),
        ),
        rich_with(
            "BAD-4",
            "geo_points",
            json!([{"longitude": 10.0, "latitude": 91.0}]),
        ),
        rich_with(
            "BAD-5",
            "funding_references",
            json!([{"funder_name": "F", "award_title": "t".repeat(1001)}]),
        ),
        rich_with(
            "BAD-6",
            "related_identifiers",
            json!([{"identifier": "x", "identifier_type": "DOI", "relation_type": "IsRelatedTo"}]),
        ),
        rich_with(
            "BAD-7",
            "geo_polygons",
            json!(vec![
                json!({"points": [point, {"longitude": 2.0, "latitude": 2.0}, {"longitude": 2.0, "latitude": 3.0}, point]});
                21
            ]),
        ),
        rich_with("BAD-8", "language", json!("English")),
        rich_with(
            "BAD-9",
            "dates",
            json!([{"date": "2020", "date_type": "Published"}]),
        ),
    ];
    let out = node.run_with_stdin(&["holdings", "import", "-"], Some(&lines.join("\n")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    assert!(
        stdout.contains("stored 1, unchanged 0, rejected 8"),
        "{stdout}"
    );
    for expected in [
        "line 2: subjects: has 201 entries; at most 200 are allowed",
        "line 3: geo_polygons[0].points: is not closed",
        "line 4: geo_points[0].latitude: 91 is outside [-90, 90] degrees",
        "line 5: funding_references[0].award_title: is 1001 characters long; at most 1000",
        "line 6: related_identifiers[0].relation_type: `IsRelatedTo` is not one of DataCite's terms",
        "line 7: geo_polygons: has 21 entries; at most 20 are allowed",
        "line 8: language: `English` is not a language tag",
        "line 9: dates[0].date_type: `Published` is not one of DataCite's terms",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_fields_replicate_verified_and_are_searched_and_served() {
    let a = TestNode::start("polar");
    let b = TestNode::start("uni");
    a.trust(&b, &[]);
    b.trust(&a, &[]);
    a.import(&[
        rich_line("BS-1", "Bering Strait moorings", "public"),
        record_line("PLAIN-1", "Svalbard snow depth", "public"),
    ]);
    let original = held(&a, "polar", "BS-1").await.expect("held at the origin");
    assert_eq!(original.funding_references.len(), 1);
    assert_eq!(original.geo_polygons[0].points.len(), 5);

    let reports = b.sync_now();
    assert_eq!(reports["polar"]["ok"], true, "{reports:?}");
    let replica = held(&b, "polar", "BS-1").await.expect("replicated");
    assert_eq!(replica, original, "every v2 field arrives, verified");
    assert_eq!(b.peers_status()["polar"]["rejected"], 0);

    // Searched at the replica: a subject as a keyword, a funder and an
    // award title as the project, a point and the antimeridian polygon by
    // the spatial filter (its bounding box, 175.5°E to 175.5°W).
    assert_eq!(search(&b, &["keyword:\"ocean temperature\""], 1), ["BS-1"]);
    assert_eq!(search(&b, &["project:sustainability"], 1), ["BS-1"]);
    assert_eq!(search(&b, &["Japan Society"], 1), ["BS-1"]);
    assert_eq!(search(&b, &["*", "--bbox", "179,61,-179,62"], 1), ["BS-1"]);
    assert_eq!(
        search(&b, &["*", "--bbox", "-169.5,65,-168.5,66"], 1),
        ["BS-1"]
    );
    assert!(search(&b, &["*", "--bbox", "0,61,10,62"], 0).is_empty());

    // The HTTP API serves them (proto3 JSON names).
    let http = a.http.expect("an HTTP listener");
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(a.data_dir().join("public.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", http.port()))
        .arg(format!(
            "https://localhost:{}/api/v1/records/polar/BS-1",
            http.port()
        ))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = &view["record"];
    assert_eq!(
        record["fundingReferences"][0]["awardTitle"],
        "Arctic Challenge for Sustainability"
    );
    assert_eq!(record["geoPolygons"][0]["points"][1]["longitude"], -175.5);
    assert_eq!(
        record["subjects"][0]["valueUri"],
        "https://gcmd.earthdata.nasa.gov/kms/concept/699bd062"
    );
    assert_eq!(record["datasetVersion"], "2.1");
    assert_eq!(record["language"], "en-US");
}
