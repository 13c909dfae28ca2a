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
