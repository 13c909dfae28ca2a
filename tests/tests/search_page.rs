//! The search page in a real browser (headless Chromium driven by
//! Playwright, `tests/browser/search_page.py`) against a live node with a
//! peer: search, paging, a facet, a year range, a box across the
//! antimeridian, a record page with its JSON-LD, keyboard use and a phone's
//! screen. Screenshots land in `target/screenshots/` (CI keeps them).
//!
//! `.ci/run` installs Chromium and Playwright; without them and without
//! `CI` set, the test is skipped with a note.

use std::path::Path;
use std::process::Command;

use meridian_testkit::harness::TestNode;

use crate::support::available;

fn browser_available() -> bool {
    available("chromium", Command::new("chromium").arg("--version"))
        && available(
            "playwright",
            Command::new("python3").args(["-c", "import playwright"]),
        )
}

fn record(
    id: &str,
    title: &str,
    year: u32,
    discipline: &str,
    visibility: &str,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "title": title,
        "description": format!("Measurements for {title}."),
        "creators": [{"name": "Nansen, Fridtjof", "affiliation": "Polar Institute"}],
        "publisher": "Polar Data Center",
        "publication_year": year,
        "resource_type": "Dataset",
        "keywords": ["polar"],
        "disciplines": [discipline],
        "license": "CC-BY-4.0",
        "access": "open",
        "visibility": visibility,
    })
}

#[test]
fn a_researcher_searches_pages_filters_and_opens_a_record_in_a_browser() {
    if !browser_available() {
        return;
    }
    let polar = TestNode::start("polar");
    let uni = TestNode::start("uni");
    polar.trust(&uni, &[]);
    uni.trust(&polar, &[]);

    let mut lines = Vec::new();
    for n in 0..24 {
        let year = if n % 2 == 0 { 2020 } else { 2021 };
        lines.push(record(
            &format!("ice-{n:02}"),
            &format!("Sea ice survey {n}"),
            year,
            "earth",
            "public",
        ));
    }
    for n in 0..3 {
        lines.push(record(
            &format!("gen-{n}"),
            &format!("Ice-binding protein genomes {n}"),
            2019,
            "life",
            "public",
        ));
    }
    let mut bering = record("bering", "Bering Sea ice survey", 2018, "earth", "public");
    bering["description"] = "Bering Sea ice & snow <depth> survey, \"2018\"".into();
    bering["doi"] = "10.5555/bering".into();
    bering["spatial"] =
        serde_json::json!([{"west": 175.0, "south": 55.0, "east": -170.0, "north": 65.0}]);
    lines.push(bering);
    lines.push(record(
        "ice-private",
        "Sea ice embargo",
        2021,
        "earth",
        "private",
    ));
    polar.import(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    uni.import(&[record("glacier", "Glacier mass balance", 2022, "earth", "public").to_string()]);
    let reports = polar.sync_now();
    assert_eq!(reports["uni"]["ok"], true, "{reports:?}");

    let http = polar.http.expect("an HTTP listener");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/search_page.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("https://localhost:{}", http.port()))
        .arg(&shots)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in ["1-search.png", "2-facet.png", "3-record.png", "4-phone.png"] {
        assert!(shots.join(shot).exists(), "{shot} saved");
    }
}
