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
