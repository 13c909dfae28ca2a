//! The node's configuration: one TOML file in the data directory, every key
//! overridable by a `MERIDIAN_*` variable, unknown keys refused.
//!
//! Overrides come from a map the caller passes in (the process environment in
//! the binary, a literal map in tests). A variable names a key path with `__`
//! between levels: `MERIDIAN_LISTEN`, `MERIDIAN_SYNC__INTERVAL_SECS`. Which
//! variables exist, and whether each holds text, a number or a flag, is read
//! from the JSON Schema of [`Config`] itself, so a key added to the type is
//! overridable at once and nothing else lists the keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::ids::NodeId;
use crate::proto::Visibility;

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "meridian.toml";
/// File name of the node's identity key inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// Unix socket of the Admin service inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// Port of the HTTP listener `init` configures by default.
pub const DEFAULT_HTTP_PORT: u16 = 7480;
/// Variables the command line reads itself; they are not config keys.
const CLI_VARIABLES: &[&str] = &["MERIDIAN_DATA_DIR"];

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a key or value that is not allowed.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// An environment override names no known key or holds a bad value.
    #[error("environment variable {variable}: {message}")]
    Override { variable: String, message: String },
}

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id: the `origin` of every record it holds.
    pub node_id: NodeId,
    /// Address of the gRPC listener (Catalog and Federation, TLS 1.3).
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Address peers dial (`host:port`), when it differs from the listener
    /// (a `0.0.0.0` bind, NAT, a load balancer). Default: the bound address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Visibility of an imported record that names none.
    #[serde(default)]
    pub default_visibility: DefaultVisibility,
    /// The DOI prefixes (`10.5285`) this institution registers DOIs under.
    /// Published in the node's key set; where this node alone claims a
    /// prefix, its copy of a DOI under it is the authoritative one at every
    /// peer (docs/decisions/doi-registrant.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doi_prefixes: Vec<String>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub search: SearchConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub oai: OaiConfig,
}

/// The Prometheus metrics listener (`/metrics`): operator data, plain HTTP,
/// for a loopback or monitoring-network address only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener; none (the default): no metrics
    /// listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub listen: Option<SocketAddr>,
}

/// The OAI-PMH provider at `/oai` on the HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OaiConfig {
    /// Records (or headers) per ListRecords or ListIdentifiers response;
    /// a harvester follows resumption tokens for the rest. 1 to 1000.
    #[serde(default = "default_oai_page_size")]
    pub page_size: usize,
    /// `repositoryName` in Identify. Default: "Meridian node NODE_ID".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_name: Option<String>,
    /// `adminEmail` in Identify. Default: `meridian@NODE_ID.invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    /// `baseURL` in Identify, when harvesters reach the node through a
    /// proxy. Default: the scheme and host of the request, then `/oai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

/// Why `text` is not an address peers can dial: `host:port`, the host a
/// DNS name, an IPv4 address or a bracketed IPv6 one, the port 1–65535,
/// nothing else (it goes into invitations as it is).
fn check_endpoint(text: &str) -> Result<(), String> {
    if text.contains("://") {
        return Err("is `host:port`, without a scheme".into());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("is `host:port`: the port is missing".into());
    };
    if !matches!(port.parse::<u16>(), Ok(1..)) || port.starts_with('+') {
        return Err(format!("has port `{port}`, not 1 to 65535"));
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    };
    if !host_ok {
        return Err(format!(
            "has host `{host}`, not a DNS name, an IPv4 address or a bracketed IPv6 one"
        ));
    }
    Ok(())
}

/// Why `text` is not a base URL harvesters can be given: an absolute
/// `http` or `https` URL with a host and no query or fragment.
fn check_base_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("is not an http or https URL")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("has no host".into());
    }
    if text.contains(['?', '#']) || text.contains(char::is_whitespace) {
        return Err("must not hold a query, a fragment or spaces".into());
    }
    Ok(())
}

/// Largest OAI-PMH page.
pub const MAX_OAI_PAGE_SIZE: usize = 1000;

fn default_oai_page_size() -> usize {
    100
}

impl Default for OaiConfig {
    fn default() -> Self {
        Self {
            page_size: default_oai_page_size(),
            repository_name: None,
            admin_email: None,
            base_url: None,
        }
    }
}

/// The HTTP server (OAI-PMH, the HTTP API, the search page).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP listener; none: no HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS, for a node behind a reverse proxy
    /// that terminates TLS. Never the default.
    #[serde(default)]
    pub plaintext: bool,
    /// Origins of web pages whose scripts may call the HTTP API from a
    /// browser (CORS), each `scheme://host[:port]`, or `*` for any page.
    /// None by default: only same-origin pages and non-browser clients.
    /// As an environment override, a comma-separated list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client: addresses
    /// or networks (`127.0.0.1`, `10.0.0.0/8`, `fd00::/8`). A request from
    /// one of them counts against the address the proxies forwarded it for
    /// (rate limits, anonymous read places); the header of any other
    /// connection is ignored. None by default. As an environment override,
    /// a comma-separated list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

impl HttpConfig {
    /// The networks of [`HttpConfig::trusted_proxies`];
    /// [`Config::check`] refused any that does not parse.
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|text| parse_network(text).ok())
            .collect()
    }
}

/// An address or network: `192.0.2.1` (one address), `10.0.0.0/8`,
/// `2001:db8::/32`.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(address) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(address));
    }
    match text.parse::<ipnet::IpNet>() {
        Ok(network) if network == network.trunc() => Ok(network),
        Ok(network) => Err(format!(
            "has host bits set past its prefix (the network is {})",
            network.trunc()
        )),
        Err(_) => Err("is not an address or a network such as 10.0.0.0/8".to_owned()),
    }
}

/// The certificate public clients see (anonymous gRPC and HTTP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first) to present instead of the one
    /// made at `init`, e.g. from an institutional CA or ACME. Reloaded on
    /// SIGHUP. Relative paths are read from the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_cert: Option<PathBuf>,
    /// PEM private key of `public_cert` (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
}

/// The visibilities a record may get when it names none (GROUPS needs the
/// record's own group list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultVisibility {
    Public,
    #[default]
    Federation,
    Private,
}

impl DefaultVisibility {
    /// The wire visibility.
    pub fn visibility(self) -> Visibility {
        match self {
            DefaultVisibility::Public => Visibility::Public,
            DefaultVisibility::Federation => Visibility::Federation,
            DefaultVisibility::Private => Visibility::Private,
        }
    }
}

/// Replication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds between background sync rounds (jittered).
    #[serde(default = "default_sync_interval")]
    pub interval_secs: u64,
    /// Seconds a peer may send nothing (no answer, no pulled item) before
    /// the pull from it ends; what was committed is kept.
    #[serde(default = "default_sync_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a round waits for its pulls before it reports; pulls still
    /// running go on in the background. Below `limits.request_timeout_secs`,
    /// so `meridian sync now` always gets its per-peer report.
    #[serde(default = "default_sync_round_timeout")]
    pub round_timeout_secs: u64,
}

fn default_sync_interval() -> u64 {
    30
}
fn default_sync_idle_timeout() -> u64 {
    20
}
fn default_sync_round_timeout() -> u64 {
    45
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_sync_interval(),
            idle_timeout_secs: default_sync_idle_timeout(),
            round_timeout_secs: default_sync_round_timeout(),
        }
    }
}

/// The record store on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Mebibytes of the store's pages kept decoded in memory. More spares
    /// reads and decoding when the store outgrows it (a replica of a large
    /// origin); the node's resident memory grows by about as much.
    #[serde(default = "default_store_cache_mib")]
    pub cache_mib: u64,
}

/// Smallest and largest `store.cache_mib` accepted.
pub const STORE_CACHE_MIB: std::ops::RangeInclusive<u64> = 8..=65_536;

fn default_store_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_MIB
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_mib: default_store_cache_mib(),
        }
    }
}

impl StoreConfig {
    /// The cache's size in bytes.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_mib << 20
    }
}

/// Searches: the live fan-out's deadlines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Milliseconds a live search waits for peers when the caller names no
    /// deadline.
    #[serde(default = "default_live_deadline_ms")]
    pub live_deadline_ms: u64,
    /// The longest deadline a caller may ask a live search for, in
    /// milliseconds; longer ones are cut to it.
    #[serde(default = "default_max_live_deadline_ms")]
    pub max_live_deadline_ms: u64,
    /// Days the audit of queries answered for peers keeps an entry.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u64,
    /// The longest a search of the index runs for anyone but the operator
    /// (anonymous callers, peers, the live searches peers forward), in
    /// milliseconds, whatever deadline the caller names: a longer one is
    /// given up with DEADLINE_EXCEEDED, so a few costly queries cannot hold
    /// every search place for a whole request timeout.
    #[serde(default = "default_max_search_ms")]
    pub max_search_ms: u64,
}

fn default_audit_retention_days() -> u64 {
    90
}

fn default_max_search_ms() -> u64 {
    10_000
}

fn default_live_deadline_ms() -> u64 {
    2000
}
fn default_max_live_deadline_ms() -> u64 {
    10_000
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            live_deadline_ms: default_live_deadline_ms(),
            max_live_deadline_ms: default_max_live_deadline_ms(),
            audit_retention_days: default_audit_retention_days(),
            max_search_ms: default_max_search_ms(),
        }
    }
}

/// The form of the node's own log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How the node writes its own log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `meridian=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// Bounds on what the node accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest gRPC message accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most concurrent requests per connection.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Deadline for a single unary request, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Anonymous reads (GetRecord, ListRecords) served at once; more wait
    /// a moment, then get RESOURCE_EXHAUSTED.
    #[serde(default = "default_anonymous_reads")]
    pub anonymous_reads: usize,
    /// Searches run at once for others than the operator (anonymous
    /// callers, peers, the live searches peers forward); more wait a
    /// moment, then get RESOURCE_EXHAUSTED.
    #[serde(default = "default_searches")]
    pub searches: usize,
    /// Connections open at once on each public listener; more are closed
    /// as soon as they are accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold open at once on each public
    /// listener (an IPv6 address counts by its /64 network); more are
    /// closed as soon as they are accepted. 0 sets no cap per address: for
    /// a listener behind a proxy or load balancer that hides client
    /// addresses, where every client is the proxy's address.
    #[serde(default = "default_connections_per_address")]
    pub connections_per_address: usize,
    /// TLS handshakes in progress at once on each public listener. One
    /// address holds at most an eighth of them while connections are
    /// capped per address.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Requests one client (an address, an IPv6 address by its /64, or the
    /// client a trusted proxy names) may have in progress at once on the
    /// HTTP listener; more are refused with 429 at once rather than queued
    /// for one of its `concurrency` places. 0 sets no cap: for a listener
    /// behind a proxy that hides client addresses.
    #[serde(default = "default_requests_at_once_per_client")]
    pub requests_at_once_per_client: usize,
    /// A connection on a public listener that has held no request for this
    /// many seconds is closed, giving its place back.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Requests per second one client (an address, or a pinned peer) may
    /// make on average; more get RESOURCE_EXHAUSTED.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
    /// Requests one client may make at once above its rate.
    #[serde(default = "default_request_burst")]
    pub request_burst: u32,
    /// A pinned peer's hints start one sync with it at a time; a peer whose
    /// hinted sync did not bring what its hints announced has its hints
    /// start at most one sync round per this many seconds.
    #[serde(default = "default_hint_interval_secs")]
    pub hint_interval_secs: u64,
}

fn default_log_level() -> String {
    "info".into()
}
fn default_max_message_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_concurrency() -> usize {
    256
}
fn default_request_timeout_secs() -> u64 {
    60
}
fn default_anonymous_reads() -> usize {
    4
}
fn default_searches() -> usize {
    8
}
fn default_max_connections() -> usize {
    1024
}
fn default_connections_per_address() -> usize {
    64
}
fn default_max_handshakes() -> usize {
    64
}
fn default_requests_at_once_per_client() -> usize {
    32
}
fn default_idle_timeout_secs() -> u64 {
    180
}
fn default_requests_per_second() -> u32 {
    50
}
fn default_request_burst() -> u32 {
    100
}
fn default_hint_interval_secs() -> u64 {
    5
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
            concurrency: default_concurrency(),
            request_timeout_secs: default_request_timeout_secs(),
            anonymous_reads: default_anonymous_reads(),
            searches: default_searches(),
            max_connections: default_max_connections(),
            connections_per_address: default_connections_per_address(),
            max_handshakes: default_max_handshakes(),
            requests_at_once_per_client: default_requests_at_once_per_client(),
            idle_timeout_secs: default_idle_timeout_secs(),
            requests_per_second: default_requests_per_second(),
            request_burst: default_request_burst(),
            hint_interval_secs: default_hint_interval_secs(),
        }
    }
}

impl Config {
    /// A fresh configuration for `meridian init`. The HTTP listener goes on
    /// the gRPC listener's address at port [`DEFAULT_HTTP_PORT`], or a free
    /// port when the gRPC listener asks for one (port 0).
    pub fn new(node_id: &NodeId, listen: SocketAddr) -> Self {
        let http_port = if listen.port() == 0 {
            0
        } else {
            DEFAULT_HTTP_PORT
        };
        Self {
            node_id: node_id.clone(),
            listen,
            endpoint: None,
            default_visibility: DefaultVisibility::default(),
            doi_prefixes: Vec::new(),
            log: LogConfig::default(),
            limits: Limits::default(),
            sync: SyncConfig::default(),
            search: SearchConfig::default(),
            store: StoreConfig::default(),
            http: HttpConfig {
                listen: Some(SocketAddr::new(listen.ip(), http_port)),
                plaintext: false,
                cors_origins: Vec::new(),
                trusted_proxies: Vec::new(),
            },
            tls: TlsConfig::default(),
            metrics: MetricsConfig::default(),
            oai: OaiConfig::default(),
        }
    }

    /// The public certificate's and key's paths: the operator's, relative
    /// to `data_dir` when not absolute, or the ones made at `init`.
    pub fn public_identity_paths(&self, data_dir: &Path) -> (PathBuf, PathBuf) {
        match (&self.tls.public_cert, &self.tls.public_key) {
            (Some(cert), Some(key)) => (data_dir.join(cert), data_dir.join(key)),
            _ => (
                data_dir.join(crate::certificate::PUBLIC_CERT_FILE),
                data_dir.join(crate::certificate::PUBLIC_KEY_FILE),
            ),
        }
    }

    /// Reads `meridian.toml` in `data_dir`, applies overrides, validates.
    pub fn load(data_dir: &Path, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path, env)
    }

    /// Parses the text of a configuration file; `path` is only for messages.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        let overrides = apply_overrides(&mut table, env)?;
        // A value an override set is blamed on its variable, not the file.
        let invalid = |message: String| match blamed(&overrides, &message) {
            Some(variable) => ConfigError::Override {
                variable: variable.to_owned(),
                message,
            },
            None => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
        };
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// The configuration as TOML, as `meridian init` writes it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a configuration serializes")
    }

    fn validate(&self) -> Result<(), String> {
        // Bounds first, so no value below is large enough to overflow where
        // it is added to a clock or sizes a semaphore.
        let limits = &self.limits;
        for (key, value, max) in [
            ("limits.concurrency", limits.concurrency as u64, MAX_COUNT),
            (
                "limits.anonymous_reads",
                limits.anonymous_reads as u64,
                MAX_COUNT,
            ),
            ("limits.searches", limits.searches as u64, MAX_COUNT),
            (
                "limits.max_connections",
                limits.max_connections as u64,
                MAX_COUNT,
            ),
            (
                "limits.max_handshakes",
                limits.max_handshakes as u64,
                MAX_COUNT,
            ),
            (
                "limits.requests_per_second",
                limits.requests_per_second.into(),
                MAX_COUNT,
            ),
            (
                "limits.request_burst",
                limits.request_burst.into(),
                MAX_COUNT,
            ),
            (
                "limits.request_timeout_secs",
                limits.request_timeout_secs,
                MAX_SECS,
            ),
            (
                "limits.idle_timeout_secs",
                limits.idle_timeout_secs,
                MAX_SECS,
            ),
            (
                "limits.hint_interval_secs",
                limits.hint_interval_secs,
                MAX_SECS,
            ),
            ("sync.interval_secs", self.sync.interval_secs, MAX_SECS),
            (
                "sync.idle_timeout_secs",
                self.sync.idle_timeout_secs,
                MAX_SECS,
            ),
            (
                "search.max_search_ms",
                self.search.max_search_ms,
                MAX_SECS * 1000,
            ),
            (
                "search.max_live_deadline_ms",
                self.search.max_live_deadline_ms,
                MAX_SECS * 1000,
            ),
            (
                "search.audit_retention_days",
                self.search.audit_retention_days,
                MAX_SECS / 86_400 * 100,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err(format!(
                    "{key}: must be at least 1 and at most {max}, not {value}"
                ));
            }
        }
        for (key, value) in [
            (
                "limits.connections_per_address",
                limits.connections_per_address,
            ),
            (
                "limits.requests_at_once_per_client",
                limits.requests_at_once_per_client,
            ),
        ] {
            if value as u64 > MAX_COUNT {
                return Err(format!(
                    "{key}: must be at most {MAX_COUNT} (0 sets no cap), not {value}"
                ));
            }
        }
        if limits.max_message_bytes > MAX_MESSAGE_BYTES {
            return Err(format!(
                "limits.max_message_bytes: must be at most {MAX_MESSAGE_BYTES}, not {}",
                limits.max_message_bytes
            ));
        }
        if self.search.live_deadline_ms == 0
            || self.search.live_deadline_ms > self.search.max_live_deadline_ms
        {
            return Err(format!(
                "search.live_deadline_ms: must be at least 1 and at most search.max_live_deadline_ms ({})",
                self.search.max_live_deadline_ms
            ));
        }
        if !STORE_CACHE_MIB.contains(&self.store.cache_mib) {
            return Err(format!(
                "store.cache_mib: must be {} to {}, not {}",
                STORE_CACHE_MIB.start(),
                STORE_CACHE_MIB.end(),
                self.store.cache_mib
            ));
        }
        if self.doi_prefixes.len() > MAX_DOI_PREFIXES {
            return Err(format!(
                "doi_prefixes: at most {MAX_DOI_PREFIXES} prefixes, not {}",
                self.doi_prefixes.len()
            ));
        }
        if let Some(bad) = self.doi_prefixes.iter().find(|p| !is_doi_prefix(p)) {
            return Err(format!(
                "doi_prefixes: `{bad}` is not a DOI prefix (`10.` and digits, dot-separated, e.g. `10.5285`)"
            ));
        }
        if self.sync.round_timeout_secs == 0
            || self.sync.round_timeout_secs >= self.limits.request_timeout_secs
        {
            return Err(format!(
                "sync.round_timeout_secs: must be at least 1 and less than limits.request_timeout_secs ({})",
                self.limits.request_timeout_secs
            ));
        }
        if self.limits.max_message_bytes < 64 * 1024 {
            return Err("limits.max_message_bytes: must be at least 65536".into());
        }
        if let Some(endpoint) = &self.endpoint {
            check_endpoint(endpoint).map_err(|why| format!("endpoint: `{endpoint}` {why}"))?;
        }
        if let Some(url) = &self.oai.base_url {
            check_base_url(url).map_err(|why| format!("oai.base_url: `{url}` {why}"))?;
        }
        for origin in &self.http.cors_origins {
            check_cors_origin(origin)
                .map_err(|why| format!("http.cors_origins: `{origin}` {why}"))?;
        }
        for proxy in &self.http.trusted_proxies {
            parse_network(proxy).map_err(|why| format!("http.trusted_proxies: `{proxy}` {why}"))?;
        }
        if !(1..=MAX_OAI_PAGE_SIZE).contains(&self.oai.page_size) {
            return Err(format!(
                "oai.page_size: must be 1 to {MAX_OAI_PAGE_SIZE}, not {}",
                self.oai.page_size
            ));
        }
        if let Some(email) = &self.oai.admin_email {
            let valid = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                && !email.chars().any(char::is_whitespace);
            if !valid {
                return Err(format!(
                    "oai.admin_email: `{email}` is not an e-mail address (user@host.domain)"
                ));
            }
        }
        if self.tls.public_cert.is_some() != self.tls.public_key.is_some() {
            return Err("tls.public_cert and tls.public_key: give both or neither".into());
        }
        Ok(())
    }

    /// The configured default visibility as the wire enum.
    pub fn default_visibility(&self) -> Visibility {
        self.default_visibility.visibility()
    }
}

/// Whether `origin` is what a browser sends as `Origin`: `*`, or
/// `http`/`https`, `://`, a host and an optional port, nothing after.
fn check_cors_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("must start with https:// or http:// (or be *)")?;
    let bad = "must be scheme://host[:port] with no path";
    let (host, port) = match rest.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or(bad)?;
            if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err(bad);
            }
            match after {
                "" => (address, None),
                _ => (address, Some(after.strip_prefix(':').ok_or(bad)?)),
            }
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
    {
        return Err(bad);
    }
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| "has a port that is not a number from 0 to 65535")?;
    }
    Ok(())
}

/// What a configuration key holds, read from the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Flag,
    /// A list of text: comma-separated in an environment variable.
    List,
}

/// Every key path of [`Config`] (`["limits", "concurrency"]`) and its kind,
/// from the type's JSON Schema.
fn schema_keys() -> BTreeMap<Vec<String>, Kind> {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).expect("a schema serializes");
    let defs = schema.get("$defs").cloned().unwrap_or(Json::Null);
    let mut keys = BTreeMap::new();
    collect_keys(&schema, &defs, &mut Vec::new(), &mut keys);
    keys
}

fn resolve<'a>(node: &'a Json, defs: &'a Json) -> &'a Json {
    match node.get("$ref").and_then(Json::as_str) {
        Some(reference) => reference
            .rsplit('/')
            .next()
            .and_then(|name| defs.get(name))
            .unwrap_or(node),
        None => match node.get("allOf").and_then(Json::as_array) {
            Some(all) if all.len() == 1 => resolve(&all[0], defs),
            _ => node,
        },
    }
}

fn collect_keys(
    node: &Json,
    defs: &Json,
    path: &mut Vec<String>,
    keys: &mut BTreeMap<Vec<String>, Kind>,
) {
    let node = resolve(node, defs);
    if let Some(properties) = node.get("properties").and_then(Json::as_object) {
        for (name, child) in properties {
            path.push(name.clone());
            collect_keys(child, defs, path, keys);
            path.pop();
        }
        return;
    }
    let types: Vec<&str> = match node.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = if types.contains(&"array") {
        Kind::List
    } else if types.contains(&"integer") || types.contains(&"number") {
        Kind::Integer
    } else if types.contains(&"boolean") {
        Kind::Flag
    } else {
        Kind::Text
    };
    keys.insert(path.clone(), kind);
}

/// Whether `variable=value` is a service link Kubernetes (or a Docker link)
/// injects for a Service whose name starts with `meridian`: not a
/// configuration key, and not an error. For a Service `meridian-headless`
/// with a port `grpc-tls` 7400 at 10.96.0.7 these are
/// `MERIDIAN_HEADLESS_SERVICE_HOST=10.96.0.7`,
/// `MERIDIAN_HEADLESS_SERVICE_PORT=7400`,
/// `MERIDIAN_HEADLESS_SERVICE_PORT_GRPC_TLS=7400`,
/// `MERIDIAN_HEADLESS_PORT=tcp://10.96.0.7:7400` and
/// `MERIDIAN_HEADLESS_PORT_7400_TCP{,_PROTO,_PORT,_ADDR}`. Name and value
/// must both have that shape, so a mistyped key (`MERIDIAN_LISTEN_PORT=7400`,
/// `MERIDIAN_PORT=7400`) is still refused.
fn injected_service_link(variable: &str, value: &str) -> bool {
    let is_port = |text: &str| text.trim().parse::<u16>().is_ok();
    let is_link_url = |text: &str| {
        ["tcp://", "udp://", "sctp://"].iter().any(|scheme| {
            text.strip_prefix(scheme)
                .is_some_and(|addr| addr.parse::<SocketAddr>().is_ok())
        })
    };
    // The Service's name, upper-cased, `-` as `_`: never empty here.
    let named = |service: &str| !service.is_empty();
    if let Some(service) = variable.strip_suffix("_SERVICE_HOST") {
        return named(service) && value.trim().parse::<std::net::IpAddr>().is_ok();
    }
    if let Some(service) = variable.strip_suffix("_SERVICE_PORT") {
        return named(service) && is_port(value);
    }
    if let Some((service, port_name)) = variable.rsplit_once("_SERVICE_PORT_") {
        return named(service) && !port_name.is_empty() && is_port(value);
    }
    if let Some(service) = variable.strip_suffix("_PORT") {
        if named(service) && is_link_url(value) {
            return true;
        }
    }
    // `{SERVICE}_PORT_{NUMBER}_{PROTOCOL}[_{FIELD}]`.
    let parts: Vec<&str> = variable.rsplitn(4, '_').collect();
    let (protocol_at, field) = match parts.first() {
        Some(&("PROTO" | "PORT" | "ADDR")) => (1, parts[0]),
        _ => (0, ""),
    };
    let tail: Vec<&str> = variable.rsplitn(protocol_at + 4, '_').collect();
    let (Some(protocol), Some(number), Some(port), Some(service)) = (
        tail.get(protocol_at),
        tail.get(protocol_at + 1),
        tail.get(protocol_at + 2),
        tail.get(protocol_at + 3),
    ) else {
        return false;
    };
    let shaped = named(service)
        && *port == "PORT"
        && is_port(number)
        && matches!(*protocol, "TCP" | "UDP" | "SCTP");
    shaped
        && match field {
            "" => is_link_url(value),
            "PROTO" => value.eq_ignore_ascii_case(protocol),
            "PORT" => value.trim() == *number,
            _ => value.trim().parse::<std::net::IpAddr>().is_ok(),
        }
}

/// Most DOI prefixes one node may claim (`doi_prefixes`).
pub const MAX_DOI_PREFIXES: usize = 64;
/// Largest count a limit may set (places, connections, requests).
const MAX_COUNT: u64 = 1 << 20;
/// Longest time, in seconds, a timeout or interval may set: a year.
const MAX_SECS: u64 = 365 * 86_400;
/// Largest message `limits.max_message_bytes` may allow.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Whether `prefix` is a DOI prefix: `10.` then dot-separated runs of
/// digits (`10.5285`, `10.1000.100`), at most 32 characters.
pub fn is_doi_prefix(prefix: &str) -> bool {
    prefix.len() <= 32
        && prefix.strip_prefix("10.").is_some_and(|rest| {
            rest.split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Puts the `MERIDIAN_*` overrides of `env` into `table`; returns each key
/// set, dotted (`limits.searches`), with the variable that set it.
fn apply_overrides(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let keys = schema_keys();
    let mut applied = Vec::new();
    for (variable, value) in env.range("MERIDIAN_".to_owned()..) {
        let Some(rest) = variable.strip_prefix("MERIDIAN_") else {
            break;
        };
        if CLI_VARIABLES.contains(&variable.as_str()) {
            continue;
        }
        let path: Vec<String> = rest
            .split("__")
            .map(|part| part.to_ascii_lowercase())
            .collect();
        let refused = |message: String| ConfigError::Override {
            variable: variable.clone(),
            message,
        };
        let Some(kind) = keys.get(&path) else {
            if injected_service_link(variable, value) {
                continue;
            }
            return Err(refused("names no configuration key".into()));
        };
        let parsed = match kind {
            Kind::Text => toml::Value::String(value.clone()),
            Kind::List => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.to_owned()))
                    .collect(),
            ),
            Kind::Integer => value
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| refused(format!("`{value}` is not a whole number")))?,
            Kind::Flag => value
                .trim()
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|_| refused(format!("`{value}` is neither true nor false")))?,
        };
        let mut slot = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry = slot
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            slot = entry
                .as_table_mut()
                .ok_or_else(|| refused(format!("`{key}` is not a table")))?;
        }
        slot.insert(path[path.len() - 1].clone(), parsed);
        applied.push((path.join("."), variable.clone()));
    }
    Ok(applied)
}

/// The variable that set the key an error `message` is about, when one of
/// `overrides` did: messages of the checks start with the key
/// (`limits.searches: …`), the parser's name it in backquotes.
fn blamed<'a>(overrides: &'a [(String, String)], message: &str) -> Option<&'a str> {
    let named = |key: &str| {
        message
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
            || message.contains(&format!("`{key}`"))
    };
    // A key the message is about first; else one it names as the other
    // side of a rule between two keys (`must be less than KEY (N)`).
    let mentioned = |key: &str| {
        message.match_indices(key).any(|(at, _)| {
            let before = message[..at].chars().next_back();
            let after = message[at + key.len()..].chars().next();
            let apart =
                |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
            apart(before) && apart(after)
        })
    };
    overrides
        .iter()
        .find(|(key, _)| named(key))
        .or_else(|| overrides.iter().find(|(key, _)| mentioned(key)))
        .map(|(_, variable)| variable.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &str = "node_id = \"polar\"\nlisten = \"127.0.0.1:7400\"\n";

    #[test]
    fn doi_prefixes_are_checked_and_named_when_bad() {
        let config = Config::parse(
            BASE,
            Path::new("m.toml"),
            &env(&[("MERIDIAN_DOI_PREFIXES", "10.5285, 10.1000.100")]),
        )
        .unwrap();
        assert_eq!(config.doi_prefixes, ["10.5285", "10.1000.100"]);
        for bad in ["11.5285", "10.", "10.52a5", "10..5", "10.5285/x"] {
            let err = Config::parse(
                BASE,
                Path::new("m.toml"),
                &env(&[("MERIDIAN_DOI_PREFIXES", bad)]),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains(&format!("doi_prefixes: `{bad}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn cors_origins_come_from_the_file_or_a_comma_separated_override() {
        let file = format!("{BASE}[http]\ncors_origins = [\"https://portal.example.org\"]\n");
        let config = Config::parse(&file, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(config.http.cors_origins, ["https://portal.example.org"]);
        let vars = env(&[(
            "MERIDIAN_HTTP__CORS_ORIGINS",
            "https://a.example.org, http://[::1]:8080,*",
        )]);
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(
            config.http.cors_origins,
            ["https://a.example.org", "http://[::1]:8080", "*"]
        );
        for bad in [
            "portal.example.org",
            "https://portal.example.org/search",
            "https://portal.example.org:99999",
            "ftp://portal.example.org",
            "https://",
        ] {
            let vars = env(&[("MERIDIAN_HTTP__CORS_ORIGINS", bad)]);
            let err = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap_err();
            assert!(
                err.to_string().contains("http.cors_origins"),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_and_bad_ones_are_named() {
        let file = format!("{BASE}[http]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n");
        let config = Config::parse(&file, Path::new("m.toml"), &env(&[])).unwrap();
        let networks: Vec<String> = config
            .http
            .trusted_networks()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["127.0.0.1/32", "10.0.0.0/8"]);
        let vars = env(&[("MERIDIAN_HTTP__TRUSTED_PROXIES", "::1, fd00::/8")]);
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(config.http.trusted_proxies, ["::1", "fd00::/8"]);
        assert_eq!(config.http.trusted_networks().len(), 2);
        for (bad, why) in [
            ("proxy.example.org", "not an address or a network"),
            ("10.0.0.0/33", "not an address or a network"),
            ("10.1.2.3/8", "the network is 10.0.0.0/8"),
            ("10.0.0.1:80", "not an address or a network"),
        ] {
            let vars = env(&[("MERIDIAN_HTTP__TRUSTED_PROXIES", bad)]);
            let file = format!("{BASE}[http]\ntrusted_proxies = [\"{bad}\"]\n");
            for err in [
                Config::parse(BASE, Path::new("m.toml"), &vars).unwrap_err(),
                Config::parse(&file, Path::new("m.toml"), &env(&[])).unwrap_err(),
            ] {
                let err = err.to_string();
                assert!(
                    err.contains(&format!("http.trusted_proxies: `{bad}`")),
                    "{bad}: {err}"
                );
                assert!(err.contains(why), "{bad}: {err}");
            }
        }
    }

    #[test]
    fn the_store_cache_is_sized_in_mebibytes_within_bounds() {
        let config = Config::parse(BASE, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(config.store.cache_bytes(), 64 << 20);
        let file = format!("{BASE}[store]\ncache_mib = 256\n");
        let config = Config::parse(&file, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(config.store.cache_bytes(), 256 << 20);
        let vars = env(&[("MERIDIAN_STORE__CACHE_MIB", "512")]);
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(config.store.cache_mib, 512);
        for bad in ["0", "7", "65537"] {
            let vars = env(&[("MERIDIAN_STORE__CACHE_MIB", bad)]);
            let err = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("store.cache_mib: must be 8 to 65536, not {bad}")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn round_trips_what_init_writes() {
        let config = Config::new(&"polar".parse().unwrap(), "127.0.0.1:0".parse().unwrap());
        let parsed = Config::parse(&config.to_toml(), Path::new("x"), &env(&[])).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let text = format!("{BASE}colour = \"blue\"\n");
        let err = Config::parse(&text, Path::new("m.toml"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let text = format!("{BASE}[log]\nverbosity = 3\n");
        let err = Config::parse(&text, Path::new("m.toml"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("verbosity"), "{err}");
    }

    #[test]
    fn environment_overrides_keys_at_any_depth() {
        let vars = env(&[
            ("MERIDIAN_LISTEN", "127.0.0.1:9999"),
            ("MERIDIAN_LIMITS__CONCURRENCY", "8"),
            ("MERIDIAN_LOG__FORMAT", "json"),
            ("MERIDIAN_DATA_DIR", "/elsewhere"),
        ]);
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.limits.concurrency, 8);
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_or_bad_overrides_are_refused() {
        let err = Config::parse(BASE, Path::new("m.toml"), &env(&[("MERIDIAN_COLOUR", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("MERIDIAN_COLOUR"), "{err}");
        let err = Config::parse(
            BASE,
            Path::new("m.toml"),
            &env(&[("MERIDIAN_LISTEN", "nowhere")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        assert!(err.to_string().contains("MERIDIAN_LISTEN"), "{err}");
    }

    /// Every limit, timeout and interval is held within bounds, so none
    /// stalls the node (no place to serve a request) or overflows a clock;
    /// a value an override set is blamed on its variable, one the file set
    /// on the file.
    #[test]
    fn limits_out_of_bounds_are_refused_naming_the_key_and_where_it_was_set() {
        let refused = |variable: &str, value: &str| {
            Config::parse(BASE, Path::new("m.toml"), &env(&[(variable, value)]))
                .unwrap_err()
                .to_string()
        };
        let err = refused("MERIDIAN_LIMITS__CONCURRENCY", "0");
        assert!(
            err.starts_with("environment variable MERIDIAN_LIMITS__CONCURRENCY: limits.concurrency: must be at least 1"),
            "{err}"
        );
        for (variable, key) in [
            (
                "MERIDIAN_LIMITS__IDLE_TIMEOUT_SECS",
                "limits.idle_timeout_secs",
            ),
            (
                "MERIDIAN_LIMITS__HINT_INTERVAL_SECS",
                "limits.hint_interval_secs",
            ),
            (
                "MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS",
                "limits.request_timeout_secs",
            ),
            ("MERIDIAN_LIMITS__SEARCHES", "limits.searches"),
            ("MERIDIAN_SYNC__INTERVAL_SECS", "sync.interval_secs"),
            (
                "MERIDIAN_LIMITS__CONNECTIONS_PER_ADDRESS",
                "limits.connections_per_address",
            ),
            (
                "MERIDIAN_LIMITS__REQUESTS_AT_ONCE_PER_CLIENT",
                "limits.requests_at_once_per_client",
            ),
        ] {
            let err = refused(variable, &i64::MAX.to_string());
            assert!(
                err.contains(variable) && err.contains(key) && err.contains("at most"),
                "{err}"
            );
        }
        let in_file = format!("{BASE}\n[limits]\nsearches = 0\n");
        let err = Config::parse(&in_file, Path::new("m.toml"), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m.toml: limits.searches: must be at least 1"),
            "{err}"
        );
    }

    /// A rule between two keys broken by an override of the other key is
    /// blamed on that override, not on the file.
    #[test]
    fn a_rule_between_two_keys_names_the_override_that_broke_it() {
        let err = Config::parse(
            BASE,
            Path::new("m.toml"),
            &env(&[("MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS", "30")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("environment variable MERIDIAN_LIMITS__REQUEST_TIMEOUT_SECS: "),
            "{err}"
        );
        assert!(err.contains("sync.round_timeout_secs"), "{err}");
    }

    /// An endpoint peers could not dial, or a base URL harvesters could
    /// not use, is refused at start naming the variable, not put into
    /// invitations and Identify as it is.
    #[test]
    fn endpoints_and_base_urls_are_checked() {
        let parsed = |variable: &str, value: &str| {
            Config::parse(BASE, Path::new("m.toml"), &env(&[(variable, value)]))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for good in [
            "node.example.org:7400",
            "10.0.0.1:7400",
            "[2001:db8::1]:7400",
            "polar-dc:443",
        ] {
            parsed("MERIDIAN_ENDPOINT", good).unwrap();
        }
        for bad in [
            "https://node:7400",
            "node",
            "node:0",
            "node:70000",
            "node:+1",
            ":7400",
            "no de:7400",
            "2001:db8::1:7400",
            "node/x:7400",
        ] {
            let err = parsed("MERIDIAN_ENDPOINT", bad).unwrap_err();
            assert!(
                err.contains("MERIDIAN_ENDPOINT") && err.contains("endpoint:"),
                "{bad}: {err}"
            );
        }
        parsed("MERIDIAN_OAI__BASE_URL", "https://data.example.org/oai").unwrap();
        for bad in [
            "data.example.org/oai",
            "https:///oai",
            "https://x/oai?verb=Identify",
        ] {
            let err = parsed("MERIDIAN_OAI__BASE_URL", bad).unwrap_err();
            assert!(err.contains("oai.base_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_key_of_the_type_can_be_overridden() {
        let keys = schema_keys();
        for path in [
            &["node_id"][..],
            &["listen"],
            &["endpoint"],
            &["default_visibility"],
            &["log", "format"],
            &["log", "level"],
            &["limits", "max_message_bytes"],
            &["limits", "concurrency"],
            &["limits", "request_timeout_secs"],
            &["sync", "interval_secs"],
            &["sync", "idle_timeout_secs"],
            &["sync", "round_timeout_secs"],
            &["store", "cache_mib"],
            &["http", "listen"],
            &["http", "plaintext"],
            &["http", "cors_origins"],
            &["http", "trusted_proxies"],
            &["tls", "public_cert"],
            &["tls", "public_key"],
            &["metrics", "listen"],
        ] {
            let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
            assert!(keys.contains_key(&path), "{path:?} in {keys:?}");
        }
        assert_eq!(
            keys[&vec!["sync".to_owned(), "interval_secs".to_owned()]],
            Kind::Integer
        );
        // Every derived key round-trips through an override.
        for path in keys.keys() {
            let variable = format!("MERIDIAN_{}", path.join("__").to_ascii_uppercase());
            for value in ["tcp://10.0.0.1:7400", "7400", "10.0.0.1", "tcp"] {
                assert!(!injected_service_link(&variable, value), "{variable}");
            }
        }
    }

    #[test]
    fn numeric_text_stays_text_and_bad_numbers_name_the_variable() {
        let vars = env(&[
            ("MERIDIAN_NODE_ID", "2024"),
            ("MERIDIAN_ENDPOINT", "10.0.0.1:7400"),
        ]);
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(config.node_id, "2024");
        assert_eq!(config.endpoint.as_deref(), Some("10.0.0.1:7400"));
        let err = Config::parse(
            BASE,
            Path::new("m.toml"),
            &env(&[("MERIDIAN_SYNC__INTERVAL_SECS", "soon")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("MERIDIAN_SYNC__INTERVAL_SECS"),
            "{err}"
        );
        let err = Config::parse(
            BASE,
            Path::new("m.toml"),
            &env(&[("MERIDIAN_DEFAULT_VISIBILITY", "groups")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("groups"), "{err}");
    }

    /// Exactly what Kubernetes injects into a pod of a namespace holding the
    /// Services of deploy/kubernetes (`meridian`, `meridian-headless`,
    /// `meridian-metrics`), with service links left on.
    fn injected() -> Vec<(&'static str, &'static str)> {
        vec![
            ("MERIDIAN_SERVICE_HOST", "10.96.0.7"),
            ("MERIDIAN_SERVICE_PORT", "7400"),
            ("MERIDIAN_SERVICE_PORT_GRPC_TLS", "7400"),
            ("MERIDIAN_PORT", "tcp://10.96.0.7:7400"),
            ("MERIDIAN_PORT_7400_TCP", "tcp://10.96.0.7:7400"),
            ("MERIDIAN_PORT_7400_TCP_PROTO", "tcp"),
            ("MERIDIAN_PORT_7400_TCP_PORT", "7400"),
            ("MERIDIAN_PORT_7400_TCP_ADDR", "10.96.0.7"),
            ("MERIDIAN_METRICS_SERVICE_HOST", "10.96.0.9"),
            ("MERIDIAN_METRICS_SERVICE_PORT", "9474"),
            ("MERIDIAN_METRICS_SERVICE_PORT_METRICS", "9474"),
            ("MERIDIAN_METRICS_PORT", "tcp://10.96.0.9:9474"),
            ("MERIDIAN_METRICS_PORT_9474_TCP", "tcp://10.96.0.9:9474"),
            ("MERIDIAN_METRICS_PORT_9474_TCP_PROTO", "tcp"),
            ("MERIDIAN_METRICS_PORT_9474_TCP_PORT", "9474"),
            ("MERIDIAN_METRICS_PORT_9474_TCP_ADDR", "10.96.0.9"),
            ("MERIDIAN_HTTP_SERVICE_HOST", "fd00:10:96::a"),
            ("MERIDIAN_HTTP_SERVICE_PORT", "7480"),
            ("MERIDIAN_HTTP_PORT", "tcp://[fd00:10:96::a]:7480"),
            ("MERIDIAN_HTTP_PORT_7480_TCP_ADDR", "fd00:10:96::a"),
        ]
    }

    #[test]
    fn variables_kubernetes_injects_are_not_config_keys() {
        let mut vars = env(&injected());
        vars.insert("MERIDIAN_LISTEN".into(), "0.0.0.0:7400".into());
        vars.insert(
            "MERIDIAN_ENDPOINT".into(),
            "meridian-0.meridian-headless:7400".into(),
        );
        vars.insert("MERIDIAN_METRICS__LISTEN".into(), "0.0.0.0:9474".into());
        let config = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:7400");
        assert_eq!(
            config.endpoint.as_deref(),
            Some("meridian-0.meridian-headless:7400")
        );
        assert_eq!(config.metrics.listen.unwrap().port(), 9474);
    }

    #[test]
    fn a_mistyped_key_shaped_like_a_service_link_is_still_refused() {
        for (variable, value) in [
            // An operator who meant the listener's port.
            ("MERIDIAN_PORT", "7400"),
            ("MERIDIAN_LISTEN_PORT", "7400"),
            ("MERIDIAN_SERVICE_HOST", "meridian.example.org"),
            ("MERIDIAN_SERVICE_PORT", "grpc"),
            ("MERIDIAN_PORT_7400_TCP", "7400"),
            ("MERIDIAN_PORT_7400_TCP_PORT", "7401"),
            ("MERIDIAN_PORT_7400_TCP_ADDR", "somewhere"),
            ("MERIDIAN_PORT_7400_HTTP", "tcp://10.96.0.7:7400"),
            ("MERIDIAN_PORT_GRPC_TCP", "tcp://10.96.0.7:7400"),
            ("MERIDIAN_LISTEN_SERVICE", "10.96.0.7"),
        ] {
            let err = Config::parse(BASE, Path::new("m.toml"), &env(&[(variable, value)]))
                .expect_err(variable);
            assert!(
                err.to_string().contains(variable) && err.to_string().contains("names no"),
                "{variable}: {err}"
            );
        }
    }

    #[test]
    fn a_service_link_never_hides_a_bad_configuration_value() {
        let mut vars = env(&injected());
        vars.insert("MERIDIAN_LISTEN".into(), "tcp://10.96.0.7:7400".into());
        let err = Config::parse(BASE, Path::new("m.toml"), &vars).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn node_ids_are_checked() {
        let text = "node_id = \"Bad Name\"\nlisten = \"127.0.0.1:1\"\n";
        let err = Config::parse(text, Path::new("m.toml"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
    }
}
