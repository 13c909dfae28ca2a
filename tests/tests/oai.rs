//! The OAI-PMH provider at `/oai` as the harvesters research
//! infrastructures run see it: real harvesters from PyPI (`sickle`,
//! `oaipmh-scythe`) harvest a real node over HTTPS through several
//! resumption tokens and a restart, and every response of every verb and
//! every error is validated with `xmlschema` against the OAI-PMH 2.0 and
//! oai_dc XSDs committed in `tests/fixtures/oai/`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meridian_testkit::harness::{record_line, TestNode};
use serde_json::{json, Value};

use crate::support::available;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/oai/oai_check.py");

fn tools_ready() -> bool {
    available(
        "python3 with sickle, oaipmh-scythe and xmlschema",
        Command::new("python3").args(["-c", "import sickle, oaipmh_scythe, xmlschema"]),
    )
}

fn base(node: &TestNode) -> String {
    format!(
        "https://localhost:{}/oai",
        node.http.expect("http listener").port()
    )
}

/// Runs a subcommand of the checking script against `node`.
fn check(node: &TestNode, command: &str, args: &[&str], stdin: Option<&Value>) -> Value {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(command)
        .arg(base(node))
        .arg(node.data_dir().join("public.crt"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(stdin) = stdin {
            input.write_all(stdin.to_string().as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// A record line with a discipline and project of its own.
fn line(id: &str, visibility: &str, discipline: &str, project: &str) -> String {
    let mut value: Value =
        serde_json::from_str(&record_line(id, &format!("Survey {id}"), visibility)).unwrap();
    value["disciplines"] = json!([discipline]);
    if !project.is_empty() {
        value["project"] = json!(project);
        // Record model v2 fields, so the schema checks see them written.
        let v2 = json!({
            "subjects": [{"value": "SEA ICE", "scheme": "GCMD Science Keywords",
                "scheme_uri": "https://gcmd.earthdata.nasa.gov/kms", "classification_code": "0105"}],
            "related_identifiers": [{"identifier": "10.1029/2023jc020111", "identifier_type": "DOI",
                "relation_type": "IsCitedBy", "resource_type_general": "JournalArticle"}],
            "funding_references": [{"funder_name": "Polar Fund", "funder_identifier": "https://ror.org/00hhkn466",
                "funder_identifier_type": "ROR", "award_number": "22H05201", "award_uri": "https://grants.example.org/1",
                "award_title": "Sea ice & snow"}],
            "geo_points": [{"longitude": -168.95, "latitude": 65.78}],
            "geo_polygons": [{"points": [{"longitude": 175.5, "latitude": 60.0}, {"longitude": -175.5, "latitude": 60.0},
                {"longitude": -175.5, "latitude": 63.25}, {"longitude": 175.5, "latitude": 60.0}]}],
            "geo_places": ["Bering Strait"],
            "dates": [{"date": "2023-11-30", "date_type": "Created"},
                {"date": "2015/2016", "date_type": "Other", "information": "recalibration"}],
            "rights": [{"statement": "Acknowledge the programme.", "uri": "https://example.org/terms"}],
            "alternate_identifiers": [{"identifier": "A-1", "identifier_type": "Local"}],
            "dataset_version": "2.1",
            "language": "en",
        });
        for (key, field) in v2.as_object().unwrap() {
            value[key] = field.clone();
        }
    }
    value.to_string()
}

fn oai_id(id: &str) -> String {
    format!("oai:oai-polar:oai-polar/{id}")
}

/// `(identifier, deleted)` of a harvest, checking none came twice.
fn once(records: &Value) -> BTreeMap<String, bool> {
    let mut seen = BTreeMap::new();
    for record in records.as_array().unwrap() {
        let id = record[0].as_str().unwrap().to_owned();
        let deleted = record[1].as_bool().unwrap();
        assert!(
            seen.insert(id.clone(), deleted).is_none(),
            "{id} harvested twice"
        );
    }
    seen
}

/// The node of the harvest tests: 30 PUBLIC records, 8 FEDERATION, 4
/// PRIVATE, 3 GROUPS; then PUB-3 deleted, PUB-4 narrowed to FEDERATION,
/// FED-0 deleted and FED-1 widened to PUBLIC. Pages of 7.
fn harvested_node() -> (TestNode, BTreeMap<String, bool>) {
    let node = TestNode::start_with("oai-polar", &[("MERIDIAN_OAI__PAGE_SIZE", "7")]);
    let disciplines = ["earth", "life", "social"];
    let mut lines = Vec::new();
    for i in 0..30 {
        let project = if i % 2 == 0 { "Arctic sea ice" } else { "" };
        lines.push(line(
            &format!("PUB-{i}"),
            "public",
            disciplines[i % 3],
            project,
        ));
    }
    for i in 0..8 {
        lines.push(line(
            &format!("FED-{i}"),
            "federation",
            "secretdiscipline",
            "Secret project",
        ));
    }
    for i in 0..4 {
        lines.push(line(
            &format!("PRIV-{i}"),
            "private",
            "secretdiscipline",
            "Secret project",
        ));
    }
    for i in 0..3 {
        lines.push(line(
            &format!("GRP-{i}"),
            "groups",
            "secretdiscipline",
            "Secret project",
        ));
    }
    node.import(&lines);
    node.ok(&["holdings", "rm", "PUB-3", "--yes"]);
    node.ok(&["holdings", "rm", "FED-0", "--yes"]);
    node.import(&[
        line("PUB-4", "federation", "earth", ""),
        line("FED-1", "public", "earth", ""),
    ]);
    let mut expected: BTreeMap<String, bool> = (0..30)
        .map(|i| (oai_id(&format!("PUB-{i}")), false))
        .collect();
    expected.insert(oai_id("PUB-3"), true);
    expected.insert(oai_id("PUB-4"), true);
    expected.insert(oai_id("FED-1"), false);
    (node, expected)
}

#[test]
fn harvesters_get_every_public_record_once_and_deletions_across_tokens_and_a_restart() {
    if !tools_ready() {
        return;
    }
    let (mut node, expected) = harvested_node();

    // sickle follows the tokens to the end: every PUBLIC record exactly
    // once, the deleted and the narrowed one as deleted, nothing else.
    let harvest = check(&node, "sickle", &["oai_dc"], None);
    assert_eq!(harvest["problems"], json!([]), "{harvest}");
    assert_eq!(once(&harvest["records"]), expected);
    for record in harvest["records"].as_array().unwrap() {
        let id = record[0].as_str().unwrap();
        let specs: Vec<&str> = record[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(specs.contains(&"origin:oai-polar"), "{id}: {specs:?}");
        if id.ends_with("PUB-0") {
            assert!(
                specs.contains(&"discipline:earth")
                    && specs.contains(&"project:Arctic~20sea~20ice"),
                "{specs:?}"
            );
        }
    }

    // The same with oai_datacite: DataCite's mandatory properties present.
    let harvest = check(&node, "sickle", &["oai_datacite"], None);
    assert_eq!(harvest["problems"], json!([]), "{harvest}");
    assert_eq!(once(&harvest["records"]), expected);

    // oaipmh-scythe, headers and records.
    for verb in ["ListIdentifiers", "ListRecords"] {
        let harvest = check(&node, "scythe", &["oai_dc", verb], None);
        assert_eq!(once(&harvest["records"]), expected, "{verb}");
    }

    // A restart in the middle of a harvest: the token of the first page
    // still leads through the rest, at the node's new address.
    let first = check(&node, "first-page", &["oai_dc"], None);
    assert_eq!(first["cursor"], "0");
    assert_eq!(first["complete"], expected.len().to_string());
    assert_eq!(first["ids"].as_array().unwrap().len(), 7);
    let token = first["token"].as_str().unwrap().to_owned();
    node.stop();
    // The index is rebuilt at start and a record arrives meanwhile: the
    // token neither depends on the index nor skips what came after it.
    std::fs::remove_dir_all(node.data_dir().join(meridian_core::node::INDEX_DIR)).unwrap();
    node.serve();
    node.import(&[line("PUB-new", "public", "life", "")]);
    let mut expected = expected;
    expected.insert(oai_id("PUB-new"), false);
    let rest = check(&node, "sickle", &["oai_dc", &token], None);
    let mut all: BTreeSet<String> = first["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for (id, _) in once(&rest["records"]) {
        assert!(all.insert(id.clone()), "{id} repeated after the restart");
    }
    assert_eq!(all, expected.keys().cloned().collect::<BTreeSet<_>>());
}

/// One request and the error code it must get (`""`: none).
fn case(expect: &str, args: &[(&str, &str)]) -> Value {
    json!({"expect": expect, "args": args, "follow": true})
}

#[test]
fn every_verb_and_every_error_validates_against_the_schemas() {
    if !tools_ready() {
        return;
    }
    let (node, expected) = harvested_node();
    let first = check(&node, "first-page", &["oai_dc"], None);
    let token = first["token"].as_str().unwrap().to_owned();
    let mut altered: Vec<char> = token.chars().collect();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    let pub0 = oai_id("PUB-0");
    let pub3 = oai_id("PUB-3");
    let fed2 = oai_id("FED-2");
    let fed0 = oai_id("FED-0");
    let priv0 = oai_id("PRIV-0");
    let lr = ("verb", "ListRecords");
    let li = ("verb", "ListIdentifiers");
    let dc = ("metadataPrefix", "oai_dc");
    let cases = vec![
        case("", &[("verb", "Identify")]),
        case("", &[("verb", "ListMetadataFormats")]),
        case(
            "",
            &[("verb", "ListMetadataFormats"), ("identifier", &pub0)],
        ),
        case(
            "idDoesNotExist",
            &[("verb", "ListMetadataFormats"), ("identifier", &fed2)],
        ),
        case("", &[("verb", "ListSets")]),
        case(
            "badResumptionToken",
            &[("verb", "ListSets"), ("resumptionToken", "x")],
        ),
        case("", &[("verb", "GetRecord"), ("identifier", &pub0), dc]),
        case(
            "",
            &[
                ("verb", "GetRecord"),
                ("identifier", &pub0),
                ("metadataPrefix", "oai_datacite"),
            ],
        ),
        case("", &[("verb", "GetRecord"), ("identifier", &pub3), dc]),
        case(
            "idDoesNotExist",
            &[("verb", "GetRecord"), ("identifier", &fed2), dc],
        ),
        case(
            "idDoesNotExist",
            &[("verb", "GetRecord"), ("identifier", &fed0), dc],
        ),
        case(
            "idDoesNotExist",
            &[("verb", "GetRecord"), ("identifier", &priv0), dc],
        ),
        case(
            "idDoesNotExist",
            &[
                ("verb", "GetRecord"),
                ("identifier", "oai:elsewhere:x/y"),
                dc,
            ],
        ),
        case(
            "badArgument",
            &[("verb", "GetRecord"), ("identifier", &pub0)],
        ),
        case(
            "cannotDisseminateFormat",
            &[
                ("verb", "GetRecord"),
                ("identifier", &pub0),
                ("metadataPrefix", "marc21"),
            ],
        ),
        case("", &[li, dc]),
        case("", &[lr, dc]),
        case("", &[lr, ("metadataPrefix", "oai_datacite")]),
        case("", &[lr, dc, ("set", "discipline:earth")]),
        case("", &[lr, dc, ("set", "project:Arctic~20sea~20ice")]),
        case("", &[lr, dc, ("set", "origin:oai-polar")]),
        case(
            "",
            &[lr, dc, ("from", "2000-01-01"), ("until", "2999-12-31")],
        ),
        case("", &[lr, dc, ("from", "2000-01-01T00:00:00Z")]),
        case(
            "noRecordsMatch",
            &[lr, dc, ("set", "discipline:secretdiscipline")],
        ),
        case("noRecordsMatch", &[lr, dc, ("set", "origin:elsewhere")]),
        case(
            "noRecordsMatch",
            &[lr, dc, ("from", "2999-01-01T00:00:00Z")],
        ),
        case("noRecordsMatch", &[lr, dc, ("until", "2000-01-01")]),
        case("badArgument", &[lr, dc, ("set", "colour:red")]),
        case(
            "badArgument",
            &[
                lr,
                dc,
                ("from", "2000-01-01"),
                ("until", "2999-01-01T00:00:00Z"),
            ],
        ),
        case("badArgument", &[lr, dc, ("from", "yesterday")]),
        case(
            "badArgument",
            &[lr, dc, ("from", "2024-01-01T00:00:00+01:00")],
        ),
        case(
            "badArgument",
            &[lr, dc, ("from", "2020-01-02"), ("until", "2020-01-01")],
        ),
        case("badArgument", &[lr]),
        case("badArgument", &[lr, dc, ("colour", "red")]),
        case(
            "badArgument",
            &[
                lr,
                dc,
                ("set", "discipline:earth"),
                ("set", "discipline:life"),
            ],
        ),
        case("badArgument", &[lr, dc, ("resumptionToken", &token)]),
        case(
            "cannotDisseminateFormat",
            &[lr, ("metadataPrefix", "marc21")],
        ),
        case("", &[lr, ("resumptionToken", &token)]),
        case("badResumptionToken", &[li, ("resumptionToken", &token)]),
        case("badResumptionToken", &[lr, ("resumptionToken", &altered)]),
        case("badResumptionToken", &[lr, ("resumptionToken", "garbage")]),
        case("badVerb", &[]),
        case("badVerb", &[("verb", "Explode")]),
        case("badVerb", &[("verb", "Identify"), ("verb", "Identify")]),
        case(
            "badArgument",
            &[("verb", "Identify"), ("identifier", &pub0)],
        ),
    ];
    let mut posted = cases.clone();
    for case in &mut posted {
        case["method"] = json!("POST");
    }
    let results = check(
        &node,
        "validate",
        &[],
        Some(&Value::Array(
            cases.iter().chain(&posted).cloned().collect(),
        )),
    );
    let all_cases: Vec<&Value> = cases.iter().chain(&posted).collect();
    for (case, result) in all_cases.iter().zip(results.as_array().unwrap()) {
        let expect = case["expect"].as_str().unwrap();
        let codes: Vec<&str> = result["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let want: Vec<&str> = if expect.is_empty() {
            vec![]
        } else {
            vec![expect]
        };
        assert_eq!(codes, want, "{case}: {result}");
        assert_eq!(result["problems"], json!([]), "{case}: {result}");
        if matches!(expect, "badVerb" | "badArgument") {
            assert_eq!(
                result["echoed"],
                json!({}),
                "no arguments echoed after {expect}: {result}"
            );
        }
        // Nothing that was never PUBLIC shows, in any list or set.
        for id in result["ids"].as_array().unwrap() {
            let id = id[0].as_str().unwrap();
            assert!(expected.contains_key(id), "{id} leaked: {case}");
        }
        for spec in result["specs"].as_array().unwrap() {
            let spec = spec.as_str().unwrap();
            assert!(
                !spec.contains("secret") && !spec.contains("Secret"),
                "{spec} leaked: {case}"
            );
        }
    }
    let by_args = |args: &Value| -> &Value {
        all_cases
            .iter()
            .position(|c| &c["args"] == args)
            .map(|i| &results[i])
            .unwrap()
    };
    // Lists follow their tokens to the end, each record once.
    let listed = by_args(&json!([
        ["verb", "ListRecords"],
        ["metadataPrefix", "oai_dc"]
    ]));
    assert_eq!(
        listed["pages"],
        json!(expected.len().div_ceil(7)),
        "{listed}"
    );
    assert_eq!(once(&listed["ids"]), expected);
    let earth = by_args(&json!([
        ["verb", "ListRecords"],
        ["metadataPrefix", "oai_dc"],
        ["set", "discipline:earth"]
    ]));
    assert_eq!(
        once(&earth["ids"])
            .into_iter()
            .filter(|(_, deleted)| !deleted)
            .count(),
        // PUB-0, 3, 6 … 27 less the deleted PUB-3, and FED-1.
        10 - 1 + 1
    );
    let sets = by_args(&json!([["verb", "ListSets"]]));
    let specs: BTreeSet<&str> = sets["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        specs,
        BTreeSet::from([
            "discipline:earth",
            "discipline:life",
            "discipline:social",
            "origin:oai-polar",
            "project:Arctic~20sea~20ice"
        ])
    );
}

#[test]
fn an_incremental_harvest_from_a_datestamp_gets_only_what_changed() {
    if !tools_ready() {
        return;
    }
    let node = TestNode::start("oai-inc");
    // Nothing PUBLIC yet: no sets, no records.
    let empty = check(
        &node,
        "validate",
        &[],
        Some(&json!([
            {"args": [["verb", "ListSets"]]},
            {"args": [["verb", "ListRecords"], ["metadataPrefix", "oai_dc"]]},
            {"args": [["verb", "Identify"]]},
        ])),
    );
    let codes: Vec<&Value> = empty
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["codes"])
        .collect();
    assert_eq!(
        codes,
        [
            &json!(["noSetHierarchy"]),
            &json!(["noRecordsMatch"]),
            &json!([])
        ]
    );
    for result in empty.as_array().unwrap() {
        assert_eq!(result["problems"], json!([]), "{result}");
    }
    node.import(
        &(0..20)
            .map(|i| line(&format!("R-{i}"), "public", "earth", ""))
            .collect::<Vec<_>>(),
    );
    // Datestamps have seconds granularity: the change lands in a later second.
    std::thread::sleep(Duration::from_millis(1100));
    let since = time_now();
    std::thread::sleep(Duration::from_millis(1100));
    let mut changed: Value = serde_json::from_str(&line("R-5", "public", "earth", "")).unwrap();
    changed["title"] = json!("Survey R-5, second edition");
    node.import(&[changed.to_string(), line("R-20", "public", "earth", "")]);
    node.ok(&["holdings", "rm", "R-7", "--yes"]);
    let results = identifiers_since(&node, &since);
    let got = once(&results[0]["ids"]);
    assert_eq!(
        got,
        BTreeMap::from([
            ("oai:oai-inc:oai-inc/R-5".to_owned(), false),
            ("oai:oai-inc:oai-inc/R-20".to_owned(), false),
            ("oai:oai-inc:oai-inc/R-7".to_owned(), true),
        ]),
        "{results}"
    );
    assert_eq!(results[0]["problems"], json!([]));
}

/// The key compromise drill, seen by a harvester: the records a revoked
/// key signed are told deleted to a harvester that harvests
/// incrementally from before the revocation, and nothing else is.
#[test]
fn an_incremental_harvest_learns_what_a_revocation_set_aside() {
    if !tools_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("oai-rev");
    let root_key = tmp.path().join("oai-rev-root.key");
    crate::support::init_node(
        "oai-rev",
        &data,
        &["--root-key", root_key.to_str().unwrap()],
    );
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        &data,
        "oai-rev",
        &[],
    )
    .unwrap();
    // Imports records, returning the log size after them.
    let import = |ids: &[&str]| -> u64 {
        let lines: Vec<String> = ids
            .iter()
            .map(|id| line(id, "public", "earth", ""))
            .collect();
        crate::support::import_at(&node, &lines)
    };
    let from = import(&["R-0", "R-1"]).to_string();
    let status = crate::support::keys_status(&node, None);
    let leaked = status["signing_key"].as_str().unwrap().to_owned();
    // The key leaked after R-1: are in doubt.
    import(&["R-2", "R-3"]);
    std::thread::sleep(Duration::from_millis(1100));
    let since = time_now();
    std::thread::sleep(Duration::from_millis(1100));
    node.ok(&[
        "keys",
        "revoke",
        &leaked,
        "--from-index",
        &from,
        "--root-key",
        root_key.to_str().unwrap(),
    ]);
    let results = identifiers_since(&node, &since);
    assert_eq!(
        once(&results[0]["ids"]),
        BTreeMap::from([
            ("oai:oai-rev:oai-rev/R-2".to_owned(), true),
            ("oai:oai-rev:oai-rev/R-3".to_owned(), true),
        ]),
        "{results}"
    );
    assert_eq!(results[0]["problems"], json!([]));
}

/// `ListIdentifiers` from `since` at `node`, followed to its end and
/// checked against the schemas.
fn identifiers_since(node: &TestNode, since: &str) -> Value {
    check(
        node,
        "validate",
        &[],
        Some(
            &json!([{"args": [["verb", "ListIdentifiers"], ["metadataPrefix", "oai_dc"], ["from", since]], "follow": true}]),
        ),
    )
}

fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = secs / 86_400;
    let (y, m, d) = civil(days as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How fast a harvester gets records over loopback (a figure, printed;
/// the bound only catches a provider that stalls).
#[test]
fn a_harvester_gets_thousands_of_records_per_second() {
    if !tools_ready() {
        return;
    }
    let node = TestNode::start_with("oai-rate", &[("MERIDIAN_OAI__PAGE_SIZE", "500")]);
    let count = 5000;
    node.import(
        &(0..count)
            .map(|i| line(&format!("R-{i}"), "public", "earth", ""))
            .collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let harvest = check(&node, "sickle", &["oai_dc"], None);
    let wall = started.elapsed();
    assert_eq!(once(&harvest["records"]).len(), count);
    let seconds = harvest["seconds"].as_f64().unwrap();
    let rate = count as f64 / seconds;
    eprintln!("oai: sickle harvested {count} records in {seconds:.2} s ({rate:.0} records/s; {wall:?} with the interpreter)");
    assert!(rate > 100.0, "{rate:.0} records/s");
}

/// A replica serves the records it replicated with their provenance, and
/// one the origin took out of its view as deleted.
#[test]
fn a_replica_serves_replicated_records_with_their_provenance() {
    if !tools_ready() {
        return;
    }
    let origin = TestNode::start("oai-origin");
    let replica = TestNode::start("oai-replica");
    origin.trust(&replica, &[]);
    replica.trust(&origin, &[]);
    origin.import(&[
        line("PUB-1", "public", "earth", ""),
        line("PUB-2", "public", "earth", ""),
        line("FED-1", "federation", "earth", ""),
        line("GRP-1", "groups", "earth", ""),
    ]);
    let reports = replica.sync_now();
    assert_eq!(reports["oai-origin"]["ok"], true, "{reports:?}");
    // Narrowed to a group the replica is not in: it gets digests only and
    // withdraws its copy.
    origin.import(&[line("PUB-2", "groups", "earth", "")]);
    replica.sync_now();

    let harvest = check(&replica, "sickle", &["oai_dc"], None);
    let seen = once(&harvest["records"]);
    assert_eq!(
        seen,
        BTreeMap::from([
            ("oai:oai-replica:oai-origin/PUB-1".to_owned(), false),
            ("oai:oai-replica:oai-origin/PUB-2".to_owned(), true),
        ]),
        "{harvest}"
    );
    let keys: Value = serde_json::from_str(&origin.ok(&["keys", "show", "--json"])).unwrap();
    for record in harvest["records"].as_array().unwrap() {
        if record[1] == json!(false) {
            let provenance = &record[4];
            assert_eq!(provenance[0], "oai-origin", "{record}");
            assert!(provenance[1].as_str().unwrap().parse::<u64>().is_ok());
            assert!(
                keys.to_string().contains(provenance[2].as_str().unwrap()),
                "signed by a key of the origin: {record} {keys}"
            );
        }
    }
}
