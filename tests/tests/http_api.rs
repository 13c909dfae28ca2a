//! The HTTP/JSON API against a live node over TLS, with curl as the client:
//! search with facets and cursors, a record with its envelope verified by
//! the caller, visibility on every path, refusals that name the field, the
//! route ⇄ OpenAPI conformance, CORS, the rate shared with gRPC, and
//! schemathesis run against `/openapi.json`.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use meridian_proto::catalog_client::CatalogClient;
use meridian_testkit::harness::{anonymous_channel, record_line, TestNode};
use serde_json::{json, Value};

use crate::support::available;

/// An HTTP answer: status, headers (lowercase names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` on `node`'s HTTP listener over TLS, trusting only the
/// node's public certificate, with `body` (JSON) and extra `headers`.
fn call(node: &TestNode, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> Reply {
    call_with(node, method, path, body, headers, &[])
}

/// [`call`] with extra curl arguments.
fn call_with(
    node: &TestNode,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[&str],
    curl_args: &[&str],
) -> Reply {
    let http = node.http.expect("an HTTP listener");
    let mut command = Command::new("curl");
    command.args(curl_args);
    command
        .args(["--silent", "--show-error", "--include", "--cacert"])
        .arg(node.data_dir().join("public.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", http.port()))
        .args(["--request", method, "--write-out", "\n%{http_code}"]);
    for header in headers {
        command.args(["--header", header]);
    }
    if body.is_some() {
        command.args(["--data-binary", "@-"]);
    }
    command.arg(format!("https://localhost:{}{path}", http.port()));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(body) = body {
            stdin.write_all(body.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (rest, code) = text.rsplit_once('\n').unwrap();
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status: code.trim().parse().unwrap(),
        headers,
        body: body.to_owned(),
    }
}

fn get(node: &TestNode, path: &str) -> Reply {
    call(node, "GET", path, None, &[])
}

fn post(node: &TestNode, path: &str, body: &str) -> Reply {
    call(
        node,
        "POST",
        path,
        Some(body),
        &["Content-Type: application/json"],
    )
}

/// `value` percent-encoded for a URL's path segment or query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A record line with `disciplines` in place of the default ones.
fn line_in(id: &str, title: &str, visibility: &str, discipline: &str) -> String {
    let mut value: Value = serde_json::from_str(&record_line(id, title, visibility)).unwrap();
    value["disciplines"] = json!([discipline]);
    value.to_string()
}

/// 25 public glacier records (every third in ocean, the rest in earth) and
/// one glacier record of each hidden visibility.
fn glaciers(node: &TestNode) {
    let mut lines: Vec<String> = (0..25)
        .map(|i| {
            let discipline = if i % 3 == 0 { "ocean" } else { "earth" };
            line_in(
                &format!("GLA-{i:02}"),
                &format!("Glacier survey {i}"),
                "public",
                discipline,
            )
        })
        .collect();
    for visibility in ["federation", "groups", "private"] {
        lines.push(line_in(
            &format!("GLA-{visibility}"),
            &format!("Glacier survey {visibility} secret"),
            visibility,
            "hidden-discipline",
        ));
    }
    node.import(&lines);
}

fn hit_ids(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_owned())
        .collect()
}

fn facet(answer: &Value, name: &str) -> Vec<(String, String)> {
    answer["facets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| {
            f["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["value"].as_str().unwrap().to_owned(),
                        v["count"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The OAI-PMH `baseURL` is the address the harvester asked for, over
/// HTTP/1.1 (its `Host`) and over HTTP/2 (its `:authority`, which carries
/// no `Host` header): never the node's id in place of the host.
#[test]
fn the_harvest_url_is_the_one_asked_for_over_either_http_version() {
    let node = TestNode::start("polar");
    let port = node.http.expect("an HTTP listener").port();
    for version in ["--http1.1", "--http2"] {
        let reply = call_with(&node, "GET", "/oai?verb=Identify", None, &[], &[version]);
        assert_eq!(reply.status, 200, "{version}: {}", reply.body);
        assert!(
            reply
                .body
                .contains(&format!("<baseURL>https://localhost:{port}/oai</baseURL>")),
            "{version}: {}",
            reply.body
        );
    }
}

#[test]
fn search_pages_with_facets_and_cursors_by_get_and_post() {
    let node = TestNode::start("polar");
    glaciers(&node);

    let first = get(&node, "/api/v1/search?query=glacier&facets=true&limit=10");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-content-type-options"), Some("nosniff"));
    // Sized, not chunked: the connection's request counting keeps the size.
    let length = first.body.len().to_string();
    assert_eq!(first.header("content-length"), Some(length.as_str()));
    let first = first.json();
    // 64-bit integers are strings in the proto3 JSON mapping.
    assert_eq!(first["total"], "25", "{first}");
    let mut disciplines = facet(&first, "discipline");
    disciplines.sort();
    assert_eq!(
        disciplines,
        [("earth".into(), "16".into()), ("ocean".into(), "9".into())],
        "hidden records count in no facet"
    );

    // Follow the cursor by GET, then the same pages by POST.
    let mut by_get = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let mut path = "/api/v1/search?query=glacier&limit=10".to_owned();
        if !cursor.is_empty() {
            path.push_str(&format!("&after={}", encode(&cursor)));
        }
        let page = get(&node, &path);
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        by_get.extend(hit_ids(&page));
        pages += 1;
        cursor = page["nextCursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<&String> = by_get.iter().collect();
    assert_eq!(unique.len(), 25, "no hit twice: {by_get:?}");
    assert!(by_get
        .iter()
        .all(|id| !id.contains("federation") && !id.contains("groups") && !id.contains("private")));

    let mut by_post = Vec::new();
    let mut after = String::new();
    loop {
        let body = json!({"query": "glacier", "limit": 10, "after": after, "facets": true});
        let page = post(&node, "/api/v1/search", &body.to_string());
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        by_post.extend(hit_ids(&page));
        after = page["nextCursor"].as_str().unwrap().to_owned();
        if after.is_empty() {
            break;
        }
    }
    assert_eq!(by_post, by_get, "GET and POST run the same search");

    // Filters, enums by name and numbers as strings, as the mapping allows.
    let ocean = get(
        &node,
        "/api/v1/search?query=glacier&disciplines=ocean&access=ACCESS_OPEN&sort=SORT_UPDATED&yearFrom=2020&yearTo=2022",
    )
    .json();
    assert_eq!(ocean["total"], "9", "{ocean}");
    let body = json!({
        "query": "glacier",
        "disciplines": ["ocean", "earth"],
        "scope": "SCOPE_LOCAL",
        "limit": "3",
        "yearFrom": 2022,
    });
    let none = post(&node, "/api/v1/search", &body.to_string()).json();
    assert_eq!(none["total"], "0", "no record is from 2022 on: {none}");
    let hit = &get(&node, "/api/v1/search?query=glacier&highlight=true&limit=1").json()["hits"][0];
    assert_eq!(hit["access"], "ACCESS_OPEN");
    assert_eq!(hit["visibility"], "VISIBILITY_PUBLIC");
    assert_eq!(hit["verified"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_comes_with_an_envelope_the_caller_can_verify() {
    let node = TestNode::start("polar");
    let mut doi: Value =
        serde_json::from_str(&record_line("10.5555/ice-7", "Ice cores", "public")).unwrap();
    doi["doi"] = json!("10.5555/ice-7");
    node.import(&[
        record_line("PDC-1", "Firn density", "public"),
        doi.to_string(),
    ]);

    let reply = get(&node, "/api/v1/records/polar/PDC-1");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = reply.json();
    assert_eq!(view["record"]["title"], "Firn density");
    assert_eq!(view["record"]["origin"], "polar");
    assert_eq!(view["record"]["visibility"], "VISIBILITY_PUBLIC");
    assert_eq!(view["record"]["publicationYear"], 2021);
    let log_index: u64 = view["logIndex"].as_str().unwrap().parse().unwrap();
    let key_id = view["verifiedKeyId"].as_str().unwrap();
    assert_eq!(view["envelope"]["signatures"][0]["keyId"], key_id);

    // Verify as any client would: the node's key set from /api/v1/node,
    // the envelope as served, DSSE over the payload bytes.
    let info = get(&node, "/api/v1/node").json();
    assert_eq!(info["nodeId"], "polar");
    let key_set: meridian_proto::Envelope = serde_json::from_value(info["keySet"].clone()).unwrap();
    // A keyset.v1 payload is the log entry that carries the key set.
    let entry: meridian_proto::LogEntry =
        prost::Message::decode(key_set.payload.as_slice()).unwrap();
    let Some(meridian_proto::log_entry::Body::KeySet(key_set)) = entry.body else {
        panic!("not a key set entry: {entry:?}");
    };
    let ring = meridian_core::sign::KeyRing::from_key_set(&key_set).unwrap();
    let envelope: meridian_proto::Envelope =
        serde_json::from_value(view["envelope"].clone()).unwrap();
    let (entry, verified) = meridian_core::sign::open_entry(&envelope, &ring).unwrap();
    assert_eq!(entry.index, log_index);
    assert_eq!(
        verified
            .key_ids
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>(),
        [key_id]
    );
    match entry.body {
        Some(meridian_proto::log_entry::Body::Record(record)) => {
            assert_eq!(record.id, "PDC-1");
            assert_eq!(record.title, "Firn density");
        }
        other => panic!("not a record entry: {other:?}"),
    }
    // A changed payload no longer verifies.
    let mut forged = envelope.clone();
    let last = forged.payload.len() - 1;
    forged.payload[last] ^= 1;
    assert!(meridian_core::sign::open_entry(&forged, &ring).is_err());

    // An id with a slash, as it is or percent-encoded.
    for path in [
        "/api/v1/records/polar/10.5555/ice-7",
        "/api/v1/records/polar/10.5555%2Fice-7",
    ] {
        let reply = get(&node, path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.json()["record"]["doi"], "10.5555/ice-7");
    }
}

#[test]
fn anonymous_callers_never_see_a_hidden_record_on_any_path() {
    let node = TestNode::start("polar");
    glaciers(&node);

    // Search: hidden records are neither hits nor counted.
    let secret = get(&node, "/api/v1/search?query=secret&facets=true").json();
    assert_eq!(secret["total"], "0", "{secret}");
    assert!(facet(&secret, "discipline").is_empty(), "{secret}");
    let body = json!({"query": "glacier", "disciplines": ["hidden-discipline"]});
    assert_eq!(
        post(&node, "/api/v1/search", &body.to_string()).json()["total"],
        "0"
    );

    // By id: 404 exactly as for a record that does not exist.
    let missing = get(&node, "/api/v1/records/polar/GLA-none");
    assert_eq!(missing.status, 404);
    for visibility in ["federation", "groups", "private"] {
        let hidden = get(&node, &format!("/api/v1/records/polar/GLA-{visibility}"));
        assert_eq!(hidden.status, 404, "{visibility}: {}", hidden.body);
        let (hidden, missing) = (hidden.json(), missing.json());
        assert_eq!(hidden["code"], "NOT_FOUND");
        assert_eq!(
            hidden["message"]
                .as_str()
                .unwrap()
                .replace(&format!("GLA-{visibility}"), "ID"),
            missing["message"]
                .as_str()
                .unwrap()
                .replace("GLA-none", "ID"),
            "the answer does not tell hidden from missing"
        );
    }

    // Listing, page by page.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let reply = get(
            &node,
            &format!(
                "/api/v1/records?origin=polar&pageSize=7&pageToken={}",
                encode(&token)
            ),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.json();
        for view in page["records"].as_array().unwrap() {
            assert_eq!(view["record"]["visibility"], "VISIBILITY_PUBLIC", "{view}");
            listed.push(view["record"]["id"].as_str().unwrap().to_owned());
        }
        token = page["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    listed.sort();
    let expected: Vec<String> = (0..25).map(|i| format!("GLA-{i:02}")).collect();
    assert_eq!(listed, expected);
}

#[test]
fn bad_input_is_refused_with_400_naming_the_field() {
    let node = TestNode::start("polar");
    node.import(&[record_line("PDC-1", "Firn density", "public")]);
    let refused = |reply: Reply, field: &str, status: u16| {
        assert_eq!(reply.status, status, "{field}: {}", reply.body);
        let error = reply.json();
        assert_eq!(error["field"], field, "{error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        error
    };
    let search = "/api/v1/search";
    for (query, field) in [
        ("limit=5000", "limit"),
        ("limit=lots", "limit"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=0,95,10,99", "bbox"),
        ("yearFrom=2020&yearTo=2010", "yearFrom"),
        ("timeFrom=yesterday", "timeFrom"),
        ("scope=EVERYWHERE", "scope"),
        ("after=not-a-cursor", "after"),
        ("scope=SCOPE_LIVE&after=not-a-cursor", "after"),
        ("query=%28unclosed", "query"),
        ("colour=blue", "colour"),
    ] {
        let error = refused(get(&node, &format!("{search}?{query}")), field, 400);
        assert_eq!(error["code"], "INVALID_ARGUMENT", "{query}");
    }
    let long_query = "a ".repeat(2000);
    refused(
        post(&node, search, &json!({"query": long_query}).to_string()),
        "query",
        400,
    );
    refused(
        post(&node, search, r#"{"bbox": {"west": true}}"#),
        "bbox.west",
        400,
    );
    refused(post(&node, search, r#"{"limit": -3}"#), "limit", 400);
    // Each filter value is looked up in every segment: at most 256.
    let origins: Vec<String> = (0..257).map(|n| format!("node-{n}")).collect();
    refused(
        post(&node, search, &json!({"origins": origins}).to_string()),
        "origins",
        400,
    );
    refused(
        post(&node, search, r#"{"sort": "SORT_SIDEWAYS"}"#),
        "sort",
        400,
    );
    refused(
        post(&node, search, r#"{"query": "ice", "colour": 1}"#),
        "colour",
        400,
    );
    refused(post(&node, search, "{\"query\": "), "body", 400);
    refused(post(&node, search, "garbage"), "body", 400);
    refused(
        post(&node, search, r#"{"query": "a"} {"query": "b"}"#),
        "body",
        400,
    );
    let huge = json!({"query": "ice", "origins": vec!["x".repeat(100); 680]});
    // Refused before it is read to the end: over HTTP/1.1 curl reads the
    // answer (over HTTP/2 the stream is reset once the answer is sent).
    let oversized = call_with(
        &node,
        "POST",
        search,
        Some(&huge.to_string()),
        &["Content-Type: application/json"],
        &["--http1.1"],
    );
    refused(oversized, "body", 400);
    refused(
        call(
            &node,
            "POST",
            search,
            Some("query=ice"),
            &["Content-Type: application/x-www-form-urlencoded"],
        ),
        "Content-Type",
        415,
    );
    let long = format!("{search}?query={}", "a".repeat(10_000));
    refused(get(&node, &long), "query string", 400);
    refused(
        get(&node, "/api/v1/records?pageToken=garbage"),
        "pageToken",
        400,
    );
    refused(
        get(&node, "/api/v1/records?pageSize=100000"),
        "pageSize",
        400,
    );

    // Unknown routes and methods.
    let unknown = get(&node, "/api/v1/nothing");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "NOT_FOUND");
    let wrong_method = call(&node, "DELETE", "/api/v1/records/polar/PDC-1", None, &[]);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["code"], "UNIMPLEMENTED");
    assert!(
        wrong_method.json()["message"]
            .as_str()
            .unwrap()
            .contains("DELETE"),
        "{}",
        wrong_method.body
    );
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD"));
    // The node still answers.
    assert_eq!(get(&node, "/api/v1/records/polar/PDC-1").status, 200);
}

/// A subset of JSON Schema, enough for the OpenAPI document's response
/// schemas; a keyword it does not know fails the test rather than pass.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    let object = schema.as_object().unwrap();
    for keyword in object.keys() {
        assert!(
            [
                "type",
                "enum",
                "properties",
                "required",
                "additionalProperties",
                "items",
                "anyOf",
                "minimum",
                "maximum",
                "pattern",
                "description",
                "contentEncoding",
                "minLength",
                "maxLength",
            ]
            .contains(&keyword.as_str()),
            "the validator does not know `{keyword}`"
        );
    }
    if let Some(any) = schema.get("anyOf") {
        let ok = any
            .as_array()
            .unwrap()
            .iter()
            .any(|s| validate(doc, s, value, at).is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!("{at}: matches no anyOf branch"))
        };
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => panic!("bad type"),
        };
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
        if !fits {
            return Err(format!("{at}: {kind} where {types:?} is expected"));
        }
    }
    if let Some(allowed) = schema.get("enum") {
        if !allowed.as_array().unwrap().contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|min| n < min)
        {
            return Err(format!("{at}: {n} is below the minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|max| n > max)
        {
            return Err(format!("{at}: {n} is above the maximum"));
        }
    }
    if let Some(text) = value.as_str() {
        match schema.get("pattern").and_then(Value::as_str) {
            None => {}
            Some("^[0-9]+$") if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!("{at}: `{text}` is not digits"));
            }
            Some("^[0-9]+$") => {}
            Some(other) => panic!("the validator does not know the pattern {other}"),
        }
        if schema.get("contentEncoding").is_some_and(|e| e == "base64")
            && !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err(format!("{at}: not base64"));
        }
    }
    if let (Some(map), Value::Object(fields)) = (schema.get("properties"), value) {
        let map = map.as_object().unwrap();
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = required.as_str().unwrap();
            if !fields.contains_key(name) {
                return Err(format!("{at}: `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            match map.get(name) {
                Some(sub) => validate(doc, sub, field, &format!("{at}.{name}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: `{name}` is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
        for (i, item) in values.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The schema `doc` gives for `method path`'s answer with `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let responses = &doc["paths"][path][method]["responses"];
    let response = match responses.get(status.to_string()) {
        Some(r) => r,
        None => &responses["default"],
    };
    &response["content"]["application/json"]["schema"]
}

#[test]
fn every_route_served_is_documented_and_answers_to_its_schema() {
    let node = TestNode::start("polar");
    glaciers(&node);
    let doc = get(&node, "/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");

    let served: BTreeSet<(String, String)> = meridian_server::api::table()
        .iter()
        .map(|route| (route.method.as_str().to_ascii_lowercase(), route.template()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(served, documented, "the router and /openapi.json disagree");

    // Each operation, called on the live node: the answer is served (not
    // the fallback's 404 or a 405) and validates against its schema.
    let sample = |path: &str| match path {
        "/api/v1/records/{origin}/{id}" => "/api/v1/records/polar/GLA-01".to_owned(),
        "/api/v1/search" => {
            "/api/v1/search?query=glacier&facets=true&highlight=true&limit=3".to_owned()
        }
        "/api/v1/records" => "/api/v1/records?pageSize=2".to_owned(),
        other => other.to_owned(),
    };
    for (method, path) in &documented {
        let reply = match method.as_str() {
            "get" => get(&node, &sample(path)),
            "post" => post(
                &node,
                path,
                r#"{"query": "glacier", "facets": true, "limit": 3}"#,
            ),
            other => panic!("no sample for {other}"),
        };
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
        let schema = response_schema(&doc, method, path, 200);
        validate(&doc, schema, &reply.json(), "$")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    // Errors answer to the Error schema.
    for (path, status) in [
        ("/api/v1/records/polar/GLA-private", 404),
        ("/api/v1/search?limit=5000", 400),
    ] {
        let reply = get(&node, path);
        assert_eq!(reply.status, status, "{path}");
        let template = if path.starts_with("/api/v1/records/") {
            "/api/v1/records/{origin}/{id}"
        } else {
            "/api/v1/search"
        };
        let schema = response_schema(&doc, "get", template, status);
        validate(&doc, schema, &reply.json(), "$").unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    // A broken answer does not validate: the check has teeth.
    let mut hit = get(&node, &sample("/api/v1/search")).json();
    hit["total"] = json!(25);
    let schema = response_schema(&doc, "get", "/api/v1/search", 200);
    assert!(validate(&doc, schema, &hit, "$").is_err());
}

#[test]
fn cors_allows_only_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        &[("MERIDIAN_HTTP__CORS_ORIGINS", "https://portal.example.org")],
    )
    .unwrap();
    let asked = |node: &TestNode, origin: &str| {
        call(
            node,
            "GET",
            // Not `/health`: a node just started may answer it 503 while its
            // index catches up, and this test is about the headers.
            "/api/v1/node",
            None,
            &[&format!("Origin: {origin}")],
        )
    };
    let allowed = asked(&node, "https://portal.example.org");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://portal.example.org")
    );
    let preflight = call(
        &node,
        "OPTIONS",
        "/api/v1/search",
        None,
        &[
            "Origin: https://portal.example.org",
            "Access-Control-Request-Method: POST",
            "Access-Control-Request-Headers: content-type",
        ],
    );
    assert!(preflight.status < 300, "{}", preflight.status);
    assert!(preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let other = asked(&node, "https://elsewhere.example.com");
    assert_eq!(other.header("access-control-allow-origin"), None);

    // By default no page of another origin may read the answers.
    let plain = TestNode::start("uni");
    let refused = asked(&plain, "https://portal.example.org");
    assert_eq!(refused.status, 200);
    assert_eq!(refused.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_is_shared_with_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        &[
            ("MERIDIAN_LIMITS__REQUESTS_PER_SECOND", "1"),
            ("MERIDIAN_LIMITS__REQUEST_BURST", "3"),
        ],
    )
    .unwrap();
    // The burst spent over gRPC…
    let mut catalog = CatalogClient::new(anonymous_channel(&node).await);
    for _ in 0..3 {
        catalog
            .search(meridian_proto::SearchRequest::default())
            .await
            .unwrap();
    }
    // …leaves nothing for HTTP from the same address.
    let reply = get(&node, "/api/v1/search?query=ice");
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json()["code"], "RESOURCE_EXHAUSTED");
    assert!(reply.header("retry-after").is_some());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&node, "/api/v1/search?query=ice").status, 200);
}

/// schemathesis generates requests from `/openapi.json` (valid and
/// invalid ones) and checks every answer against the document: status
/// codes, content types, headers, response schemas, that invalid input is
/// refused and valid input accepted, and that no request makes a 5xx.
#[test]
fn schemathesis_finds_no_failure() {
    if !available(
        "schemathesis",
        Command::new("schemathesis").arg("--version"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        // schemathesis sends hundreds of requests a second.
        &[
            ("MERIDIAN_LIMITS__REQUESTS_PER_SECOND", "100000"),
            ("MERIDIAN_LIMITS__REQUEST_BURST", "100000"),
        ],
    )
    .unwrap();
    glaciers(&node);
    let http = node.http.unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    // schemathesis keeps a cache in its working directory: a temporary one.
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("schemathesis")
        .current_dir(work.path())
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("https://127.0.0.1:{}/openapi.json", http.port()))
        .args(["--checks", "all", "--max-examples", "40", "--seed", "1"])
        .arg("--tls-verify")
        .arg(node.data_dir().join("public.crt"))
        .output()
        .expect("schemathesis runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains("passed"), "{report}");
}

/// A client that starts a POST and sends its body no further, on `node`'s
/// HTTP listener; its stdin stays open (and the upload unfinished) until
/// the returned child is waited for or killed.
fn slow_upload(node: &TestNode) -> std::process::Child {
    let http = node.http.expect("an HTTP listener");
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error", "--cacert"])
        .arg(node.data_dir().join("public.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", http.port()))
        .args([
            "--header",
            "Content-Type: application/json",
            "--request",
            "POST",
            "--upload-file",
            "-",
            "--write-out",
            "\n%{http_code}",
        ])
        .arg(format!("https://localhost:{}/api/v1/search", http.port()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"{").unwrap();
    stdin.flush().unwrap();
    child
}

/// With one request place: clients that never finish their bodies each
/// hold it in turn, and a request queued behind them is answered by its
/// own deadline (3 s), not after theirs one after the other; a slow body
/// is given up after 10 s, however long the request deadline.
#[test]
fn a_slow_body_holds_its_place_no_longer_than_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        &[
            ("MERIDIAN_LIMITS__CONCURRENCY", "1"),
            ("MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS", "3"),
            ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "2"),
        ],
    )
    .unwrap();
    let mut slow: Vec<std::process::Child> = Vec::new();
    for _ in 0..3 {
        slow.push(slow_upload(&node));
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let started = std::time::Instant::now();
    let queued = get(&node, "/api/v1/search?query=ice");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "answered after {took:?} ({})",
        queued.status
    );
    for mut child in slow {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let patient = TestNode::start_at(
        meridian_testkit::harness::meridian_bin(),
        dir.path(),
        "polar",
        &[("MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS", "60")],
    )
    .unwrap();
    let mut child = slow_upload(&patient);
    // The upload is left unfinished past the 10 s; then it is finished, and
    // curl hands over what it was answered. Had the node waited for the
    // body, the answer would be 400 (a body of `{` alone).
    std::thread::sleep(std::time::Duration::from_secs(12));
    drop(child.stdin.take());
    let slow = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&slow.stdout);
    assert!(out.ends_with("\n408"), "{out}");
    assert!(out.contains("did not arrive whole within 10 s"), "{out}");
}
