//! The search page a researcher opens in a browser: `/` with its assets,
//! all served by the node (no CDN, no external fonts: it works on a network
//! without the internet), and one server-rendered page per record at
//! `/records/{origin}/{id}` carrying schema.org `Dataset` JSON-LD, so that
//! dataset search engines can index what the node shares.
//!
//! The page reads the HTTP API (`crate::api`) as any client does; a record
//! page asks the Catalog as an anonymous caller, so it shows exactly what
//! the API would: PUBLIC records only, and "not found" for any other.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meridian_core::index::escape_html as escape;
use meridian_core::visibility::Viewer;
use meridian_proto as proto;
use serde_json::{json, Value};

use crate::limit;
use crate::web::{AppState, ClientAddr};

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// Scripts, styles and requests from this node only; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/records/{origin}/{*id}", get(record))
}

/// Headers every page carries.
fn page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn index() -> Response {
    page(StatusCode::OK, INDEX_HTML.to_owned())
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    nosniff(response)
}

/// Browsers take the content type as given, never guessed.
fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `/records/{origin}/{id}`: one record, every field, its provenance and
/// its JSON-LD; asked of the Catalog as an anonymous caller.
async fn record(
    State(state): State<AppState>,
    addr: ClientAddr,
    Path((origin, id)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = state.catalog.admit(&limit::client_at(Some(addr.0), None)) {
        return error_page(&refused);
    }
    let request = proto::GetRecordRequest {
        origin: origin.clone(),
        id: id.clone(),
    };
    match state.catalog.get_record(request, Viewer::Anonymous).await {
        Ok(view) => page(StatusCode::OK, render_record(&view)),
        Err(refused) => error_page(&refused),
    }
}

fn error_page(refused: &tonic::Status) -> Response {
    let (status, title) = match refused.code() {
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "No such record"),
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "Not a record address"),
        tonic::Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Try again shortly"),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The record could not be read",
        ),
    };
    let body = format!(
        "{head}<main><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Search</a></p></main></body></html>",
        head = head(title, ""),
        title = escape(title),
        message = escape(refused.message()),
    );
    page(status, body)
}

/// The document's head and page header; `extra` goes into `<head>`.
fn head(title: &str, extra: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Meridian</title><link rel=\"stylesheet\" href=\"/assets/app.css\">{extra}</head>\
         <body><header><h1><a href=\"/\">Meridian</a></h1></header>",
        escape(title)
    )
}

/// A link only for http(s) addresses: a record's URL field never becomes a
/// `javascript:` link.
fn link(url: &str, text: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        format!("<a href=\"{}\">{}</a>", escape(url), escape(text))
    } else {
        escape(text)
    }
}

fn access_name(access: i32) -> &'static str {
    meridian_core::record::access_name(access)
}

fn render_record(view: &proto::RecordView) -> String {
    let record = view.record.clone().unwrap_or_default();
    let ld = json_ld(&record);
    // `<` escaped so no value can close the script element.
    let ld = serde_json::to_string_pretty(&ld)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let mut out = head(
        &record.title,
        &format!("<script type=\"application/ld+json\">{ld}</script>"),
    );
    out.push_str("<main><article>");
    out.push_str(&format!("<h1 id=\"title\">{}</h1>", escape(&record.title)));
    let creators: Vec<String> = record.creators.iter().map(|c| escape(&c.name)).collect();
    out.push_str(&format!(
        "<p class=\"meta\">{} · {} · {}</p>",
        creators.join("; "),
        escape(&record.publisher),
        record.publication_year
    ));
    if !record.doi.is_empty() {
        out.push_str(&format!(
            "<p>{}</p>",
            link(
                &format!("https://doi.org/{}", record.doi),
                &format!("doi:{}", record.doi)
            )
        ));
    }
    if !record.description.is_empty() {
        out.push_str(&format!("<p>{}</p>", escape(&record.description)));
    }
    out.push_str("<h2>Every field</h2><dl class=\"fields\" id=\"fields\">");
    let fields = serde_json::to_value(&record).unwrap_or(Value::Null);
    if let Value::Object(fields) = fields {
        for (name, value) in fields {
            let shown = match (name.as_str(), &value) {
                ("landingUrl", Value::String(url)) => link(url, url),
                (_, value) => escape(&plain(value)),
            };
            out.push_str(&format!("<dt>{}</dt><dd>{shown}</dd>", escape(&name)));
        }
    }
    out.push_str("</dl><h2>Provenance</h2><dl class=\"fields\" id=\"provenance\">");
    for (name, value) in [
        ("origin", record.origin.clone()),
        ("version", record.version.to_string()),
        ("log index", view.log_index.to_string()),
        ("signed by key", view.verified_key_id.clone()),
        (
            "signature",
            "verified by this node against the origin's pinned key".to_owned(),
        ),
    ] {
        out.push_str(&format!("<dt>{name}</dt><dd>{}</dd>", escape(&value)));
    }
    out.push_str(&format!(
        "</dl><p><a href=\"/api/v1/records/{}/{}\">The signed envelope (JSON)</a> · <a href=\"/\">Search</a></p>",
        escape(&urlencode(&record.origin)),
        escape(&urlencode(&record.id))
    ));
    out.push_str("</article></main></body></html>");
    out
}

/// A field value as text: lists joined, objects as `key: value` pairs.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", plain(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// schema.org `Dataset` for a record (what Google Dataset Search and
/// others read).
fn json_ld(record: &proto::DatasetRecord) -> Value {
    let mut ld = json!({
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": record.title,
        "description": record.description,
        "creator": record.creators.iter().map(|c| {
            let mut person = json!({"@type": "Person", "name": c.name});
            if !c.affiliation.is_empty() {
                person["affiliation"] = json!({"@type": "Organization", "name": c.affiliation});
            }
            if !c.orcid.is_empty() {
                person["identifier"] = json!(format!("https://orcid.org/{}", c.orcid));
            }
            person
        }).collect::<Vec<_>>(),
        "publisher": {"@type": "Organization", "name": record.publisher},
        "datePublished": record.publication_year.to_string(),
        "keywords": record.keywords,
        "isAccessibleForFree": record.access == proto::Access::Open as i32,
        "version": record.version.to_string(),
        "includedInDataCatalog": {"@type": "DataCatalog", "name": record.origin},
    });
    if !record.doi.is_empty() {
        ld["identifier"] = json!(format!("https://doi.org/{}", record.doi));
    }
    if !record.landing_url.is_empty() {
        ld["url"] = json!(record.landing_url);
    }
    if !record.license.is_empty() {
        ld["license"] = json!(format!("https://spdx.org/licenses/{}.html", record.license));
    }
    if !record.updated_at.is_empty() {
        ld["dateModified"] = json!(record.updated_at);
    }
    if let Some(t) = &record.temporal {
        ld["temporalCoverage"] = json!(format!(
            "{}/{}",
            t.start,
            if t.end.is_empty() { ".." } else { &t.end }
        ));
    }
    if !record.spatial.is_empty() {
        ld["spatialCoverage"] = json!(record.spatial.iter().map(|b| json!({
            "@type": "Place",
            "geo": {"@type": "GeoShape", "box": format!("{} {} {} {}", b.south, b.west, b.north, b.east)},
        })).collect::<Vec<_>>());
    }
    if !record.dataset_version.is_empty() {
        ld["version"] = json!(record.dataset_version);
    }
    if !record.language.is_empty() {
        ld["inLanguage"] = json!(record.language);
    }
    if !record.funding_references.is_empty() {
        ld["funder"] = json!(record
            .funding_references
            .iter()
            .map(|f| json!({"@type": "Organization", "name": f.funder_name}))
            .collect::<Vec<_>>());
    }
    if record.size_bytes > 0 {
        ld["contentSize"] = json!(format!("{} B", record.size_bytes));
    }
    if !record.formats.is_empty() {
        ld["encodingFormat"] = json!(record.formats);
    }
    ld["accessMode"] = json!(access_name(record.access));
    ld
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_cannot_escape_into_markup_or_script() {
        let record = proto::DatasetRecord {
            origin: "polar".into(),
            id: "x/1".into(),
            title: "<script>alert(1)</script>".into(),
            description: "</script><img src=x onerror=alert(1)>".into(),
            landing_url: "javascript:alert(1)".into(),
            ..Default::default()
        };
        let html = render_record(&proto::RecordView {
            record: Some(record),
            ..Default::default()
        });
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href=\"javascript:"), "{html}");
        // One script element: the JSON-LD, whose `<` are escaped.
        assert_eq!(html.matches("<script").count(), 1);
        assert_eq!(html.matches("</script>").count(), 1);
        assert!(html.contains("/api/v1/records/polar/x%2F1"));
    }

    #[test]
    fn json_ld_is_a_schema_org_dataset() {
        let record = proto::DatasetRecord {
            origin: "polar".into(),
            title: "Sea ice".into(),
            doi: "10.1234/abc".into(),
            license: "CC-BY-4.0".into(),
            spatial: vec![proto::BoundingBox {
                west: 160.0,
                south: 60.0,
                east: -120.0,
                north: 90.0,
            }],
            ..Default::default()
        };
        let ld = json_ld(&record);
        assert_eq!(ld["@type"], "Dataset");
        assert_eq!(ld["identifier"], "https://doi.org/10.1234/abc");
        assert_eq!(ld["license"], "https://spdx.org/licenses/CC-BY-4.0.html");
        assert_eq!(ld["spatialCoverage"][0]["geo"]["box"], "60 160 90 -120");
    }
}
