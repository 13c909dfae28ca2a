//! The HTTP/JSON API under `/api/v1`: the Catalog's search and reads for
//! clients that speak HTTP, described by the OpenAPI 3.1 document served at
//! `/openapi.json` (`api/openapi.json`).
//!
//! Every answer comes from the same calls as gRPC's `Catalog`
//! ([`crate::catalog::Catalog`]): one search path, one read path, the same
//! per-client rate and anonymous read slots. HTTP callers are anonymous and
//! see PUBLIC records only; a record they may not see is 404, exactly as a
//! missing one. Bodies are the proto3 JSON mapping of the wire types
//! (lowerCamelCase names, enums by name, 64-bit integers as strings, bytes
//! as base64), from `meridian-proto`'s generated `serde` implementations.
//! Errors are `{code, message, field?}` with the HTTP status of the gRPC
//! code ([`crate::status::http`]).

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use meridian_core::visibility::Viewer;
use meridian_proto as proto;
use serde::Serialize;
use tonic::Status;

use crate::catalog::Catalog;
use crate::limit;
use crate::web::{AppState, Arrived, ClientAddr};

/// The OpenAPI 3.1 document of every route the HTTP server serves.
pub const OPENAPI: &str = include_str!("api/openapi.json");

/// Largest request body (a JSON search request), in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest query string, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// One route of the HTTP server: a method, an axum path and its handler.
pub struct Route {
    pub method: Method,
    /// The axum path (`{*id}` takes the rest of the path).
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        Self {
            method,
            path,
            handler: on(filter, handler),
        }
    }

    /// The path as an OpenAPI path template (`{*id}` is `{id}`).
    pub fn template(&self) -> String {
        self.path.replace("{*", "{")
    }
}

/// Every route of the HTTP server. The router is built from this list and
/// nothing else, and a test holds it and `/openapi.json` to each other.
pub fn table() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/healthz", health),
        Route::new(Method::GET, "/openapi.json", openapi),
        Route::new(Method::GET, "/api/v1/health", health),
        Route::new(Method::GET, "/api/v1/node", node_info),
        Route::new(Method::GET, "/api/v1/search", search_get),
        Route::new(Method::POST, "/api/v1/search", search_post),
        Route::new(Method::GET, "/api/v1/records", list_records),
        // A record id may hold `/` (a DOI): the rest of the path is the id.
        Route::new(Method::GET, "/api/v1/records/{origin}/{*id}", get_record),
    ]
}

/// The router of [`table`]; any other path is a JSON 404, and a method a
/// route does not take a JSON 405.
pub fn routes() -> Router<AppState> {
    table()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNIMPLEMENTED",
                format!("this route does not take {method}; its `Allow` header says what it takes"),
            )
        })
}

/// `/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// An error as the API answers it: `{code, message, field?}`.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// The gRPC code's name (`INVALID_ARGUMENT`, `NOT_FOUND`, …).
    code: &'static str,
    message: String,
    /// The request field or parameter the error is about, as the API
    /// names it (lowerCamelCase).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in `field` (its API name).
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
        }
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let http = StatusCode::from_u16(crate::status::http(status.code()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status: http,
            code: code_name(status.code()),
            field: crate::status::field(&status).map(camel_case),
            message: status.message().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = json(status, &self);
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A proto field name as the JSON mapping spells it (`time_from` →
/// `timeFrom`); a path of them keeps its dots.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        // nosniff: an answer (an error that quotes the request, a record's
        // text) is never taken for HTML, whatever it holds.
        Ok(bytes) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) => ApiError::from(crate::status::internal(&e)).into_response(),
    }
}

/// The caller of an HTTP request, once it fits its rate: anonymous (the
/// HTTP API presents no client certificate), counted against its address
/// in the same buckets as its gRPC requests.
fn admit(catalog: &Catalog, addr: ClientAddr) -> Result<Viewer, ApiError> {
    catalog.admit(&limit::client_at(Some(addr.0), None))?;
    Ok(Viewer::Anonymous)
}

/// `GET /api/v1/search`: the request's fields as query parameters.
async fn search_get(
    State(state): State<AppState>,
    addr: ClientAddr,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let viewer = admit(&state.catalog, addr)?;
    let request = search_params(query.as_deref().unwrap_or_default())?;
    let answer = state.catalog.search(request, viewer, None).await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /api/v1/search`: a `SearchRequest` in the proto3 JSON mapping.
async fn search_post(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let viewer = admit(&state.catalog, addr)?;
    let request: proto::SearchRequest = json_body(&headers, body).await?;
    let answer = state.catalog.search(request, viewer, None).await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `GET /api/v1/records/{origin}/{id}`: one record with its envelope.
async fn get_record(
    State(state): State<AppState>,
    addr: ClientAddr,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let viewer = admit(&state.catalog, addr)?;
    let Path((origin, id)) = path.map_err(|e| {
        ApiError::invalid(
            "path",
            format!("the record's origin and id: {}", e.body_text()),
        )
    })?;
    let view = state
        .catalog
        .get_record(proto::GetRecordRequest { origin, id }, viewer)
        .await?;
    Ok(json(StatusCode::OK, &view))
}

/// `GET /api/v1/records`: a page of an origin's records.
async fn list_records(
    State(state): State<AppState>,
    addr: ClientAddr,
    arrived: Arrived,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let viewer = admit(&state.catalog, addr)?;
    let mut request = proto::ListRecordsRequest::default();
    for (name, value) in Params::parse(query.as_deref().unwrap_or_default())?.single()? {
        match name.as_str() {
            "origin" => request.origin = value,
            "pageSize" => {
                request.page_size = parse_u32(&name, &value)?;
                if request.page_size as usize > meridian_core::holdings::MAX_PAGE {
                    return Err(ApiError::invalid(
                        &name,
                        format!("pageSize: at most {}", meridian_core::holdings::MAX_PAGE),
                    ));
                }
            }
            "pageToken" => request.page_token = value,
            _ => return Err(unknown_param(&name)),
        }
    }
    let deadline = state.catalog.answer_by(arrived.0);
    let page = state
        .catalog
        .list_records(request, viewer, deadline)
        .await?;
    Ok(json(StatusCode::OK, &page))
}

/// `GET /api/v1/node`: who this node is, its key set (to verify its
/// records' signatures) and the size of its own log. The other logs it
/// holds are left out: an anonymous caller does not learn its peers.
async fn node_info(State(state): State<AppState>, addr: ClientAddr) -> Result<Response, ApiError> {
    admit(&state.catalog, addr)?;
    let node = state.catalog.node().clone();
    let mut info = tokio::task::spawn_blocking(move || meridian_core::sync::node_info(&node))
        .await
        .map_err(crate::status::join)?
        .map_err(crate::status::sync)?;
    let own = state.catalog.node().node_id().to_string();
    info.origins.retain(|head| head.origin == own);
    Ok(json(StatusCode::OK, &info))
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`] as `T`; an error names
/// the field that did not fit, by its path (`bbox.west`).
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    // Read first (bounded), so a client still sending its body gets the
    // answer rather than a reset stream.
    let bytes: Bytes = crate::web::read_body(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| ApiError {
            field: Some("body".into()),
            ..match e {
                crate::web::BodyError::TooLarge => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                ),
                crate::web::BodyError::TooSlow => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "DEADLINE_EXCEEDED",
                    format!(
                        "the body did not arrive whole within {} s",
                        crate::web::BODY_ARRIVAL.as_secs()
                    ),
                ),
                crate::web::BodyError::Broken(why) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("the body could not be read: {why}"),
                ),
            }
        })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError {
            field: Some("Content-Type".into()),
            ..ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                "the body must be JSON (Content-Type: application/json)",
            )
        });
    }
    let mut reader = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A body that is not JSON at all is the body's fault, not a field's.
        if path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(
                "body",
                format!(
                    "the body is not a valid request: {inner} (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            )
        } else {
            // pbjson reads a number as a number or a string holding one.
            let why = inner.to_string().replace(
                "data did not match any variant of untagged enum Content",
                "expected a number, or a string holding one",
            );
            ApiError::invalid(&path, format!("{path}: {why}"))
        }
    })?;
    reader.end().map_err(|e| {
        ApiError::invalid("body", format!("trailing data after the JSON value: {e}"))
    })?;
    Ok(value)
}

/// A query string's parameters in order, decoded.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Result<Self, ApiError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(ApiError {
                field: Some("query string".into()),
                ..ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("the query string is longer than {MAX_QUERY_BYTES} bytes"),
                )
            });
        }
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(Self)
            .map_err(|e| ApiError::invalid("query string", format!("bad query string: {e}")))
    }

    /// The parameters, each given at most once.
    fn single(self) -> Result<Vec<(String, String)>, ApiError> {
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in &self.0 {
            if !seen.insert(name.as_str()) {
                return Err(ApiError::invalid(
                    name,
                    format!("{name}: given more than once"),
                ));
            }
        }
        Ok(self.0)
    }
}

fn unknown_param(name: &str) -> ApiError {
    ApiError::invalid(name, format!("{name}: no such parameter"))
}

fn parse_u32(name: &str, value: &str) -> Result<u32, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(
            name,
            format!("{name}: `{value}` is not a whole number from 0 to 4294967295"),
        )
    })
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(
            name,
            format!("{name}: `{value}` is neither true nor false"),
        )),
    }
}

/// A `SearchRequest` from query parameters: each field by its JSON name;
/// repeated fields by repeating the parameter; `bbox` as
/// `west,south,east,north`; enums by name.
fn search_params(query: &str) -> Result<proto::SearchRequest, ApiError> {
    let mut request = proto::SearchRequest::default();
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in Params::parse(query)?.0 {
        let repeated = matches!(
            name.as_str(),
            "disciplines" | "origins" | "access" | "licenses" | "formats"
        );
        if !repeated && !seen.insert(name.clone()) {
            return Err(ApiError::invalid(
                &name,
                format!("{name}: given more than once"),
            ));
        }
        match name.as_str() {
            "query" => request.query = value,
            "scope" => {
                let scope = proto::Scope::from_str_name(&value)
                    .ok_or_else(|| bad_enum(&name, &value, proto::Scope::from_i32_names()))?;
                request.set_scope(scope);
            }
            "sort" => {
                let sort = proto::Sort::from_str_name(&value)
                    .ok_or_else(|| bad_enum(&name, &value, proto::Sort::from_i32_names()))?;
                request.set_sort(sort);
            }
            "access" => {
                let access = proto::Access::from_str_name(&value)
                    .ok_or_else(|| bad_enum(&name, &value, proto::Access::from_i32_names()))?;
                request.access.push(access as i32);
            }
            "disciplines" => request.disciplines.push(value),
            "origins" => request.origins.push(value),
            "licenses" => request.licenses.push(value),
            "formats" => request.formats.push(value),
            "yearFrom" => request.year_from = parse_u32(&name, &value)?,
            "yearTo" => request.year_to = parse_u32(&name, &value)?,
            "bbox" => request.bbox = Some(parse_bbox(&value)?),
            "timeFrom" => request.time_from = value,
            "timeTo" => request.time_to = value,
            "limit" => request.limit = parse_u32(&name, &value)?,
            "deadlineMs" => request.deadline_ms = parse_u32(&name, &value)?,
            "after" => request.after = value,
            "facets" => request.facets = parse_bool(&name, &value)?,
            "highlight" => request.highlight = parse_bool(&name, &value)?,
            _ => return Err(unknown_param(&name)),
        }
    }
    Ok(request)
}

fn bad_enum(name: &str, value: &str, allowed: Vec<&'static str>) -> ApiError {
    ApiError::invalid(
        name,
        format!("{name}: `{value}` is not one of {}", allowed.join(", ")),
    )
}

/// Names of an enum's values, for messages.
trait EnumNames {
    fn from_i32_names() -> Vec<&'static str>;
}

macro_rules! enum_names {
    ($($ty:ty),*) => {$(
        impl EnumNames for $ty {
            fn from_i32_names() -> Vec<&'static str> {
                (0..).map_while(|i| <$ty>::try_from(i).ok()).map(|v| v.as_str_name()).collect()
            }
        }
    )*};
}
enum_names!(proto::Scope, proto::Sort, proto::Access);

fn parse_bbox(value: &str) -> Result<proto::BoundingBox, ApiError> {
    let bad = || {
        ApiError::invalid(
            "bbox",
            format!("bbox: `{value}` is not four numbers west,south,east,north"),
        )
    };
    let numbers = value
        .split(',')
        .map(|part| part.trim().parse::<f64>().ok().filter(|n| n.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(bad)?;
    let [west, south, east, north] = numbers[..] else {
        return Err(bad());
    };
    Ok(proto::BoundingBox {
        west,
        south,
        east,
        north,
    })
}

/// Whether the node serves: 200 `serving` once its index has caught up
/// with what it stores, 503 `starting` before (as gRPC health says).
pub(crate) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let node = state.replicator.node().clone();
    let behind = tokio::task::spawn_blocking(move || node.index_behind())
        .await
        .ok()
        .and_then(Result::ok);
    let ready = behind == Some(0);
    let body = serde_json::json!({
        "status": if ready { "serving" } else { "starting" },
        "node_id": state.replicator.node().node_id().as_str(),
        "index_behind": behind,
        "ready": ready,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves is in the OpenAPI document, and every
    /// operation of the document is served.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: std::collections::BTreeSet<(String, String)> = table()
            .iter()
            .map(|route| (route.method.to_string(), route.template()))
            .collect();
        assert_eq!(served, documented);
        // Every reference resolves.
        let text = OPENAPI;
        for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    /// A listing's deadline counts from when the request reached the
    /// listener, as the listener's timeout does: a request that waited
    /// for its place is answered by the handler, with what it found and
    /// how to go on, before the listener would cut it off without a body.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_listing_answers_by_the_deadline_counted_from_its_arrival() {
        use tower::ServiceExt;
        let (node, replicator, _dir) = crate::test_node(&[
            ("MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS", "2"),
            ("MERIDIAN_SYNC__ROUND_TIMEOUT_SECS", "1"),
        ]);
        // Listed by id: the hidden records come first.
        let lines: Vec<String> = (0..3)
            .map(|n| crate::record_line(&format!("h{n}"), "private", "earth"))
            .chain((0..3).map(|n| crate::record_line(&format!("r{n}"), "public", "earth")))
            .collect();
        tokio::task::block_in_place(|| node.import_lines(1, &lines).unwrap());
        let app = routes().with_state(AppState {
            catalog: std::sync::Arc::new(Catalog::new(replicator.clone())),
            replicator,
        });
        let list = |arrived: std::time::Instant, token: &str| {
            let request =
                axum::http::Request::get(format!("/api/v1/records?origin=polar&pageToken={token}"))
                    .extension(axum::extract::ConnectInfo(crate::web::ClientConn {
                        addr: "127.0.0.1:4000".parse().unwrap(),
                        activity: None,
                    }))
                    .extension(Arrived(arrived))
                    .body(axum::body::Body::empty())
                    .unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (status, page) = list(std::time::Instant::now(), "").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["records"].as_array().unwrap().len(), 3, "{page}");

        // Past its deadline on arrival, it scans one entry, a hidden one:
        // an empty page, and a sealed token to go on from there.
        let waited = std::time::Instant::now() - std::time::Duration::from_secs(2);
        let (status, page) = list(waited, "").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.get("records")
                .is_none_or(|r| r.as_array().unwrap().is_empty()),
            "{page}"
        );
        let token = page["nextPageToken"].as_str().unwrap();
        assert!(token.starts_with("p1."), "{token}");
        let (status, rest) = list(std::time::Instant::now(), token).await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        assert_eq!(rest["records"].as_array().unwrap().len(), 3, "{rest}");
    }

    #[test]
    fn query_parameters_fill_every_field_of_a_search() {
        let request = search_params(
            "query=title%3Aice&scope=SCOPE_LOCAL&disciplines=earth&disciplines=ocean\
             &origins=polar&access=ACCESS_OPEN&licenses=CC-BY-4.0&formats=netCDF\
             &yearFrom=2000&yearTo=2020&bbox=-10,60,30.5,80&timeFrom=2001&timeTo=2002-06-30\
             &sort=SORT_UPDATED&limit=5&after=abc&facets=true&highlight=false",
        )
        .unwrap();
        assert_eq!(request.query, "title:ice");
        assert_eq!(request.scope(), proto::Scope::Local);
        assert_eq!(request.disciplines, ["earth", "ocean"]);
        assert_eq!(request.origins, ["polar"]);
        assert_eq!(request.access, [proto::Access::Open as i32]);
        assert_eq!(request.licenses, ["CC-BY-4.0"]);
        assert_eq!(request.formats, ["netCDF"]);
        assert_eq!((request.year_from, request.year_to), (2000, 2020));
        assert_eq!(
            request.bbox,
            Some(proto::BoundingBox {
                west: -10.0,
                south: 60.0,
                east: 30.5,
                north: 80.0
            })
        );
        assert_eq!(
            (request.time_from.as_str(), request.time_to.as_str()),
            ("2001", "2002-06-30")
        );
        assert_eq!(request.sort(), proto::Sort::Updated);
        assert_eq!(request.limit, 5);
        assert_eq!(request.after, "abc");
        assert!(request.facets && !request.highlight);
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (query, field) in [
            ("limit=many", "limit"),
            ("limit=-1", "limit"),
            ("scope=everywhere", "scope"),
            ("access=OPEN", "access"),
            ("bbox=1,2,3", "bbox"),
            ("bbox=1,2,3,NaN", "bbox"),
            ("facets=yes", "facets"),
            ("query=a&query=b", "query"),
            ("colour=blue", "colour"),
        ] {
            let err = search_params(query).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(err.field.as_deref(), Some(field), "{query}: {err:?}");
            assert!(err.message.starts_with(field), "{query}: {err:?}");
        }
        let long = format!("query={}", "a".repeat(MAX_QUERY_BYTES));
        let err = search_params(&long).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("query string"));
    }

    #[test]
    fn statuses_become_api_errors_with_their_field() {
        let err = ApiError::from(crate::status::invalid_field("time_from", "time_from: bad"));
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "INVALID_ARGUMENT");
        assert_eq!(err.field.as_deref(), Some("timeFrom"));
        let err = ApiError::from(Status::resource_exhausted("slow down"));
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.field, None);
        let err = ApiError::from(Status::not_found("no record"));
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(err.code, "NOT_FOUND");
    }

    #[test]
    fn json_bodies_use_the_proto3_mapping_and_name_bad_fields() {
        let request: proto::SearchRequest = serde_json::from_str(
            r#"{"query": "ice", "scope": "SCOPE_LOCAL", "access": ["ACCESS_OPEN"],
                "yearFrom": 2000, "bbox": {"west": 1, "south": 2, "east": 3, "north": 4},
                "limit": "5", "facets": true}"#,
        )
        .unwrap();
        assert_eq!(request.scope(), proto::Scope::Local);
        assert_eq!(request.limit, 5);
        assert_eq!(request.bbox.unwrap().north, 4.0);

        let bad = |body: &str| {
            let mut reader = serde_json::Deserializer::from_str(body);
            let err = serde_path_to_error::deserialize::<_, proto::SearchRequest>(&mut reader)
                .unwrap_err();
            err.path().to_string()
        };
        assert_eq!(bad(r#"{"limit": "many"}"#), "limit");
        assert_eq!(bad(r#"{"bbox": {"west": true}}"#), "bbox.west");
        assert_eq!(bad(r#"{"scope": "EVERYWHERE"}"#), "scope");
        assert_eq!(bad(r#"{"colour": 1}"#), "colour");
    }

    #[test]
    fn responses_use_lower_camel_case_and_strings_for_64_bit_integers() {
        let view = proto::SearchResponse {
            total: 3,
            next_cursor: "c".into(),
            took_micros: 12,
            hits: vec![proto::SearchHit {
                size_bytes: 1 << 40,
                access: proto::Access::Open as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let value = serde_json::to_value(&view).unwrap();
        assert_eq!(value["total"], "3");
        assert_eq!(value["nextCursor"], "c");
        assert_eq!(value["tookMicros"], "12");
        assert_eq!(value["hits"][0]["sizeBytes"], "1099511627776");
        assert_eq!(value["hits"][0]["access"], "ACCESS_OPEN");
        assert_eq!(value["facets"], serde_json::json!([]));
    }
}
