//! DataCite in and out through the `meridian` command: DataCite's own
//! example records and messy repository records imported as DataCite XML,
//! the holdings exported as DataCite XML (validated with `xmlschema`
//! against the DataCite 4.6 XSD in `tests/fixtures/datacite/`) and as
//! DataCite JSON, and both exports imported by another node: every record
//! comes back equal to what the input held, after normalisation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use meridian_core::crosswalk::{self, Format, Outcome, XmlRecords};
use meridian_core::proto::DatasetRecord;
use meridian_testkit::harness::TestNode;
use serde_json::Value;

use crate::support::available;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/datacite")
        .join(name)
}

const EXAMPLES: [&str; 3] = [
    "kernel-4.6/example/datacite-example-dataset-v4.xml",
    "kernel-4.6/example/datacite-example-full-v4.xml",
    "kernel-4.6/example/datacite-example-coverage-v4.xml",
];

/// The records a DataCite XML file holds, as the crosswalk reads them, by id.
fn read_xml(path: &Path) -> BTreeMap<String, DatasetRecord> {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    XmlRecords::new(file, Format::DataciteXml)
        .filter_map(|item| match item.unwrap().outcome {
            Outcome::Record(c) => Some((c.record.id.clone(), c.record)),
            _ => None,
        })
        .collect()
}

/// The holdings as the node lists them, by id, without what the node adds.
fn held(node: &TestNode) -> BTreeMap<String, DatasetRecord> {
    let out = node.ok(&["holdings", "list", "--json"]);
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    records
        .iter()
        .map(|value| {
            let mut record = meridian_core::record::parse_json_line(&value.to_string()).unwrap();
            record.origin.clear();
            record.version = 0;
            record.visibility = 0;
            (record.id.clone(), record)
        })
        .collect()
}

/// `holdings import --format FORMAT PATH` at `node`: exit code, stdout,
/// stderr.
fn import(node: &TestNode, format: &str, path: &Path) -> (Option<i32>, String, String) {
    let out = node.run(&[
        "holdings",
        "import",
        "--format",
        format,
        path.to_str().unwrap(),
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn datacite_xml_imports_exports_valid_xml_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start("pdc");

    // DataCite's own examples, one file each.
    let mut expected = BTreeMap::new();
    for example in EXAMPLES {
        let path = fixture(example);
        let (code, stdout, stderr) = import(&node, "datacite-xml", &path);
        assert_eq!(code, Some(0), "{example}: {stdout} {stderr}");
        assert!(
            stdout.contains("stored 1, unchanged 0, rejected 0"),
            "{example}: {stdout}"
        );
        expected.extend(read_xml(&path));
    }
    assert_eq!(expected.len(), 3);

    // Messy records: two made valid with each change reported, one refused by line.
    let messy = fixture("messy.xml");
    let (code, stdout, stderr) = import(&node, "datacite-xml", &messy);
    assert_eq!(code, Some(1), "a refused record fails the import: {stderr}");
    assert!(
        stdout.contains("stored 2, unchanged 0, rejected 1"),
        "{stdout}"
    );
    assert!(stderr.contains("line 93: title: is required"), "{stderr}");
    assert!(
        stderr.contains("line 78: changed: publication_year: `[1998?]` read as 1998"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 78: changed: title: removed 1 control character"),
        "{stderr}"
    );
    assert!(stdout.contains("6 change(s) made"), "{stdout}");
    expected.extend(read_xml(&messy));

    // A second import of the same file changes nothing.
    let (_, stdout, _) = import(&node, "datacite-xml", &messy);
    assert!(
        stdout.contains("stored 0, unchanged 2, rejected 1"),
        "{stdout}"
    );

    let holdings = held(&node);
    assert_eq!(holdings.len(), 5);
    for (id, record) in &expected {
        let mut stored = holdings
            .get(id)
            .unwrap_or_else(|| panic!("{id} not held"))
            .clone();
        if record.updated_at.is_empty() {
            // The node dates a record that came without an update date.
            stored.updated_at.clear();
        }
        assert_eq!(&stored, record, "{id}");
    }

    // Export as DataCite XML: valid against the 4.6 XSD, and equal to the input.
    let exported = node.ok(&["holdings", "export", "--format", "datacite-xml"]);
    let export_path = write(dir.path(), "export.xml", &exported);
    if available(
        "python3 with xmlschema",
        Command::new("python3").args(["-c", "import xmlschema"]),
    ) {
        let out = Command::new("python3")
            .arg(fixture("validate.py"))
            .arg(&export_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["resources"], 5, "{report}");
        assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    }
    let back = read_xml(&export_path);
    assert_eq!(back.len(), 5);
    for (id, record) in &holdings {
        assert_eq!(&back[id], record, "{id} after export");
    }

    // Another node imports the XML export and the JSON export: same holdings.
    for format in ["datacite-xml", "datacite-json"] {
        let text = node.ok(&["holdings", "export", "--format", format]);
        let path = write(dir.path(), &format!("export.{format}"), &text);
        let other = TestNode::start("mirror");
        let (code, stdout, stderr) = import(&other, format, &path);
        assert_eq!(code, Some(0), "{format}: {stdout} {stderr}");
        assert!(
            stdout.contains("stored 5, unchanged 0, rejected 0"),
            "{format}: {stdout}"
        );
        assert!(
            !stdout.contains("change(s) made"),
            "an export needs no normalisation: {stdout}"
        );
        assert_eq!(held(&other), holdings, "{format}");
    }
}

/// Runs a Python script of `tests/fixtures/datacite` on `args`: its JSON
/// report, or `None` when python3 (with `module`) is missing outside CI.
fn python_report(script: &str, module: &str, args: &[&Path]) -> Option<Value> {
    if !available(
        &format!("python3 with {module}"),
        Command::new("python3").args(["-c", &format!("import {module}")]),
    ) {
        return None;
    }
    let out = Command::new("python3")
        .arg(fixture(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Every property value the record model holds, in DataCite's examples and
/// in a record that uses all of them, is in the node's DataCite XML export
/// (compared one by one by a reader independent of the node's), the export
/// validates against the 4.6 XSD, and the DataCite JSON export imported by
/// another node gives back the same records.
#[test]
fn datacite_export_is_lossless_for_every_property_the_model_holds() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start("ads");
    let mut sources = Vec::new();
    for name in EXAMPLES.iter().copied().chain(["rich.xml"]) {
        let path = fixture(name);
        let (code, stdout, stderr) = import(&node, "datacite-xml", &path);
        assert_eq!(code, Some(0), "{name}: {stdout} {stderr}");
        assert!(
            stdout.contains("stored 1, unchanged 0, rejected 0"),
            "{name}: {stdout}"
        );
        sources.push(path);
    }
    let holdings = held(&node);
    let rich = &holdings["10.5285/7e1f0c2a-rich-0001"];
    assert_eq!(rich.funding_references.len(), 3);
    assert_eq!(rich.geo_polygons.len(), 2);
    assert_eq!(rich.subjects.len(), 4);
    assert_eq!(rich.dataset_version, "2.1");

    let exported = node.ok(&["holdings", "export", "--format", "datacite-xml"]);
    let export_path = write(dir.path(), "export.xml", &exported);
    if let Some(report) = python_report("validate.py", "xmlschema", &[&export_path]) {
        assert_eq!(report["resources"], 4, "{report}");
        assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    }
    let mut args: Vec<&Path> = vec![&export_path];
    args.extend(sources.iter().map(PathBuf::as_path));
    if let Some(report) = python_report("compare.py", "xml.etree.ElementTree", &args) {
        assert_eq!(report["compared"], 4, "{report}");
        assert_eq!(report["values"], 142, "{report}");
        assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    }
    // The comparison fails on a poorer export: drop one funder's award title.
    let poorer = exported.replacen(
        "<awardTitle>Arctic Challenge for Sustainability II</awardTitle>",
        "",
        1,
    );
    assert_ne!(poorer, exported);
    let poorer_path = write(dir.path(), "poorer.xml", &poorer);
    let mut args: Vec<&Path> = vec![&poorer_path];
    args.extend(sources.iter().map(PathBuf::as_path));
    if let Some(report) = python_report("compare.py", "xml.etree.ElementTree", &args) {
        let missing = report["missing"].as_array().unwrap();
        assert_eq!(missing.len(), 1, "{report}");
        assert!(
            missing[0].as_str().unwrap().contains("fundingReference"),
            "{report}"
        );
    }

    let text = node.ok(&["holdings", "export", "--format", "datacite-json"]);
    let path = write(dir.path(), "export.jsonl", &text);
    let other = TestNode::start("mirror");
    let (code, stdout, stderr) = import(&other, "datacite-json", &path);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(!stdout.contains("change(s) made"), "{stdout}");
    assert_eq!(held(&other), holdings);
}

#[test]
fn oai_dc_and_bad_input_are_reported_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start("repo");
    let dc = r#"<?xml version="1.0"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>
<record><header><identifier>oai:repo.example.org:7</identifier><datestamp>2024-01-01</datestamp></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>Lake sediment cores</dc:title><dc:creator>Ramos, Ana</dc:creator><dc:publisher>Repo</dc:publisher>
<dc:date>2011-00-00</dc:date><dc:type>Dataset</dc:type></oai_dc:dc></metadata></record>
<record><header status="deleted"><identifier>oai:repo.example.org:8</identifier><datestamp>2024-01-01</datestamp></header></record>
</ListRecords></OAI-PMH>"#;
    let path = write(dir.path(), "dc.xml", dc);
    let (code, stdout, stderr) = import(&node, "oai-dc", &path);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(
        stdout.contains("stored 1, unchanged 0, rejected 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("publication_year: `2011-00-00` read as 2011"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 record(s) marked deleted in the file were not imported"),
        "{stderr}"
    );
    let held = held(&node);
    assert_eq!(held["oai:repo.example.org:7"].publication_year, 2011);

    // A document that breaks off: the records before the fault are stored.
    let broken = format!(
        "{}\n<resource><titles><title>cut",
        std::fs::read_to_string(fixture(EXAMPLES[0]))
            .unwrap()
            .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<all>")
    );
    let path = write(dir.path(), "broken.xml", &broken);
    let (code, stdout, stderr) = import(&node, "datacite-xml", &path);
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    assert!(
        stdout.contains("stored 1, unchanged 0, rejected 1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("xml: ") && stderr.contains("the rest of the file is not read"),
        "{stderr}"
    );

    // A document that ends between records, its outer element never
    // closed: the record before is read, and the import fails, saying the
    // file was cut short rather than taking it as complete.
    let cut = std::fs::read_to_string(fixture(EXAMPLES[0]))
        .unwrap()
        .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<all>");
    let path = write(dir.path(), "cut.xml", &cut);
    let (code, stdout, stderr) = import(&node, "datacite-xml", &path);
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    assert!(
        stdout.contains("stored 0, unchanged 1, rejected 1"),
        "{stdout} {stderr}"
    );
    assert!(
        stderr.contains("inside <all>") && stderr.contains("cut short"),
        "{stderr}"
    );

    // DataCite JSON lines: a bad one is named by its line, the others stored.
    let good = crosswalk::datacite::to_json(&held["oai:repo.example.org:7"]).to_string();
    let lines = format!(
        "{good}\n{{\"doi\": 5\n\n{}\n",
        good.replace("Lake sediment cores", "")
    );
    let path = write(dir.path(), "dois.jsonl", &lines);
    let (_, stdout, stderr) = import(&node, "datacite-json", &path);
    assert!(
        stdout.contains("stored 0, unchanged 1, rejected 2"),
        "{stdout} {stderr}"
    );
    assert!(stderr.contains("line 2: json:"), "{stderr}");
    assert!(stderr.contains("line 4: title: is required"), "{stderr}");

    let out = node.run(&["holdings", "export", "--format", "oai-dc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read on import only"));
}
