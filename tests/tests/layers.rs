//! The modules of each crate import one way: no two modules (nor a longer
//! circle of them) use each other. Crates cannot form circles (Cargo
//! refuses them); inside a crate nothing else would stop one.
//!
//! A module is a file (`oai.rs` is `oai`, `oai/token.rs` is `oai::token`).
//! Its imports are the `crate::` and `super::` paths it names before its
//! tests, outside comments, each resolved to the deepest module file the
//! path names. A module
//! may use its ancestors (`sync/receive.rs` naming `crate::sync`): they hold
//! what their children share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's modules, by name, with the modules each imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `oai/token.rs` → `["oai", "token"]`; the crate root is `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
        parts.clear();
    }
    parts
}

/// The paths after `crate::` or `super::` in `text`, with `{a, b::c}`
/// groups spread out: each as its segments.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        spread(rest, &mut Vec::new(), &mut found);
    }
    found
}

/// Reads one path (or `{…}` group) at the start of `text` onto `stem`.
fn spread(text: &str, stem: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
    let ident: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let after = &text[ident.len()..];
    if !ident.is_empty() {
        stem.push(ident.clone());
        if let Some(next) = after.strip_prefix("::") {
            spread(next, stem, found);
        } else {
            found.push(stem.clone());
        }
        stem.pop();
    } else if let Some(group) = text.strip_prefix('{') {
        // Split the group's top-level items.
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    spread(group[start..i].trim_start(), stem, found);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    spread(group[start..i].trim_start(), stem, found);
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
}

/// The longest prefix of `path` that is a module of `modules`.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

fn graph_of(krate: &Path) -> Graph {
    let src = krate.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let me = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = code.as_str();
        let mut uses = BTreeSet::new();
        let parent = &me[..me.len().saturating_sub(1)];
        let absolute = paths_after(text, "crate::");
        let relative = paths_after(text, "super::").into_iter().map(|p| {
            let mut full = parent.to_vec();
            full.extend(p);
            full
        });
        for path in absolute.into_iter().chain(relative) {
            let target = resolve(&path, &modules);
            if target != me && !me.starts_with(&target) {
                uses.insert(target.join("::"));
            }
        }
        graph.insert(me.join("::"), uses);
    }
    graph
}

/// A circle of `graph`, if it has one, as the modules around it.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut around = path[at..].to_vec();
            around.push(node.to_owned());
            return Some(around);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_every_crate_import_one_way() {
    let node = workspace().join("node");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&node)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    crates.sort();
    assert!(crates.len() >= 5, "{crates:?}");
    let mut read = 0;
    for krate in crates {
        let graph = graph_of(&krate);
        read += graph.len();
        if let Some(around) = circle(&graph) {
            panic!(
                "{}: modules use each other: {}",
                krate.display(),
                around.join(" → ")
            );
        }
    }
    assert!(read > 50, "only {read} modules read");
}

/// The check has teeth: the two circles it is meant to catch are found.
#[test]
fn a_circle_is_found_through_groups_and_super() {
    let modules: BTreeSet<Vec<String>> = [vec![], vec!["a".into()], vec!["a".into(), "b".into()]]
        .into_iter()
        .collect();
    let paths = paths_after("use crate::{x, a::{b::Item, c}};", "crate::");
    let resolved: BTreeSet<Vec<String>> = paths.iter().map(|p| resolve(p, &modules)).collect();
    assert!(resolved.contains(&vec!["a".to_owned(), "b".to_owned()]));
    assert!(resolved.contains(&vec!["a".to_owned()]));

    let mut graph = Graph::new();
    graph.insert("http".into(), ["api".into()].into());
    graph.insert("api".into(), ["web".into(), "http".into()].into());
    graph.insert("web".into(), BTreeSet::new());
    assert_eq!(
        circle(&graph),
        Some(vec!["api".into(), "http".into(), "api".into()])
    );
    graph.get_mut("api").unwrap().remove("http");
    assert_eq!(circle(&graph), None);
}
