//! The node's configuration: one TOML file in the data directory, every key
//! overridable by a `MERIDIAN_*` variable, unknown keys refused.
//!
//! Overrides come from a map the caller passes in (the process environment in
//! the binary, a literal map in tests). A variable names a key path with `__`
//! between levels: `MERIDIAN_LISTEN`, `MERIDIAN_SYNC__INTERVAL_SECS`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::proto::Visibility;

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "meridian.toml";
/// File name of the node's identity key inside the data directory.
pub const KEY_FILE: &str = "identity.key";
/// Unix socket of the Admin service inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id: the `origin` of every record it holds.
    pub node_id: String,
    /// Address of the gRPC listener (Catalog and Federation, TLS 1.3).
    pub listen: SocketAddr,
    /// Address peers dial (`host:port`), when it differs from the listener
    /// (a `0.0.0.0` bind, NAT, a load balancer). Default: the bound address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Visibility of an imported record that names none.
    #[serde(default = "default_visibility")]
    pub default_visibility: String,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sync: SyncConfig,
}

/// Replication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds between background sync rounds (jittered).
    #[serde(default = "default_sync_interval")]
    pub interval_secs: u64,
}

fn default_sync_interval() -> u64 {
    30
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_sync_interval(),
        }
    }
}

/// How the node writes its own log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter, e.g. `info` or `meridian=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// Bounds on what the node accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

fn default_visibility() -> String {
    "federation".into()
}
fn default_log_format() -> String {
    "human".into()
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

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
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
        }
    }
}

impl Config {
    /// A fresh configuration for `meridian init`.
    pub fn new(node_id: &str, listen: SocketAddr) -> Self {
        Self {
            node_id: node_id.to_owned(),
            listen,
            endpoint: None,
            default_visibility: default_visibility(),
            log: LogConfig::default(),
            limits: Limits::default(),
            sync: SyncConfig::default(),
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
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        apply_overrides(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// The configuration as TOML, as `meridian init` writes it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), String> {
        validate_node_id(&self.node_id).map_err(|reason| format!("node_id: {reason}"))?;
        crate::record::parse_visibility(&self.default_visibility).ok_or_else(|| {
            "default_visibility: expected public, federation, groups or private".to_owned()
        })?;
        if self.default_visibility == "groups" {
            return Err("default_visibility: `groups` needs the record's own group list".into());
        }
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(format!(
                "log.format: `{}` is neither human nor json",
                self.log.format
            ));
        }
        if self.sync.interval_secs == 0 {
            return Err("sync.interval_secs: must be at least 1".into());
        }
        if self.limits.max_message_bytes < 64 * 1024 {
            return Err("limits.max_message_bytes: must be at least 65536".into());
        }
        Ok(())
    }

    /// The configured default visibility as the wire enum.
    pub fn default_visibility(&self) -> Visibility {
        crate::record::parse_visibility(&self.default_visibility).unwrap_or(Visibility::Federation)
    }
}

/// Node ids are short lowercase names: they appear in keys, logs and URLs.
pub fn validate_node_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if id.is_empty() || id.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !id.chars().all(ok_char) || id.starts_with(['-', '.']) {
        return Err(format!(
            "`{id}` may hold only a-z, 0-9, '-' and '.', and must start with a letter or digit"
        ));
    }
    Ok(())
}

fn apply_overrides(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
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
        let known = known_key(&path);
        if !known {
            return Err(ConfigError::Override {
                variable: variable.clone(),
                message: "names no configuration key".into(),
            });
        }
        // A value that reads as TOML (a number, a bool) keeps its type.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut slot = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry = slot
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            slot = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
                variable: variable.clone(),
                message: format!("`{key}` is not a table"),
            })?;
        }
        slot.insert(path[path.len() - 1].clone(), parsed);
    }
    Ok(())
}

fn known_key(path: &[String]) -> bool {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(
        path.as_slice(),
        ["node_id"]
            | ["listen"]
            | ["endpoint"]
            | ["default_visibility"]
            | ["log", "format" | "level"]
            | [
                "limits",
                "max_message_bytes" | "concurrency" | "request_timeout_secs"
            ]
            | ["sync", "interval_secs"]
    )
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
    fn round_trips_what_init_writes() {
        let config = Config::new("polar", "127.0.0.1:0".parse().unwrap());
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
        assert_eq!(config.log.format, "json");
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
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(validate_node_id("polar-dc.cn").is_ok());
        for bad in ["", "Polar", "a b", "-x", "x/y", &"a".repeat(65)] {
            assert!(validate_node_id(bad).is_err(), "{bad}");
        }
        let text = "node_id = \"Bad Name\"\nlisten = \"127.0.0.1:1\"\n";
        let err = Config::parse(text, Path::new("m.toml"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
    }
}
