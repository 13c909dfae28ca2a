//! A real-text catalogue for the search benchmark: the Debian archive's own
//! package lists, which every Debian machine keeps from its package registry
//! (`/var/lib/apt/lists/*_Packages.lz4`).
//!
//! Each binary package becomes one PUBLIC record:
//!
//! | Packages field | record field |
//! | --- | --- |
//! | `Package` | `id` |
//! | `Description` (the one-line synopsis) | `title` |
//! | `Tag` (debtags, e.g. `implemented-in::c`) | `keywords` |
//! | `Section` (without a `contrib/` or `non-free/` prefix) | `disciplines` |
//! | `Maintainer` (the name, without the address) | `creators` |
//! | `Source` (without its version), else `Package` | `project` |
//! | `Homepage` | `landing_url` (left out when it is not a valid URL) |
//! | `Version` | `dataset_version` |
//! | `Size` | `size_bytes` |
//! | the suite's `InRelease` `Date` | `publication_year` |
//!
//! `publisher` is "Debian", `resource_type` "Software", `access` open. The
//! lists carry no long descriptions (those are in `Translation-*` files,
//! which apt does not keep by default), so `description` is left out. A
//! package listed in more than one file (a security or stable update and
//! the release) is taken once, from the first file in name order, which
//! puts the updates before the release. A value over a record bound is cut
//! at a word boundary, so no package is dropped for its length.
//!
//! [`queries`] draws short real-word queries from the records' own titles.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use meridian_core::record::{MAX_NAME_CHARS, MAX_TERM_CHARS, MAX_TITLE_CHARS, MAX_VERSION_CHARS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Where apt keeps the lists it downloaded.
pub const APT_LISTS: &str = "/var/lib/apt/lists";

/// One stanza of a Packages file: field name to value (continuation lines
/// joined with a newline, their leading space removed).
pub type Stanza = BTreeMap<String, String>;

/// Splits Packages text (RFC 822-style stanzas) into stanzas.
pub fn stanzas(text: &str) -> Vec<Stanza> {
    let mut all = Vec::new();
    let mut stanza = Stanza::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                all.push(std::mem::take(&mut stanza));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|name| stanza.get_mut(name)) {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            stanza.insert(name.to_owned(), value.trim().to_owned());
            last = Some(name.to_owned());
        }
    }
    if !stanza.is_empty() {
        all.push(stanza);
    }
    all
}

/// Cuts `text` to at most `max` characters, at the last whitespace before
/// the bound when there is one (at the bound otherwise).
pub fn truncate_words(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max + 1).collect();
    let at = cut
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i);
    match at {
        Some(i) if i > 0 => cut[..i].trim_end().to_owned(),
        _ => cut.chars().take(max).collect(),
    }
}

/// The record of one package, or `None` for a stanza without a name or a
/// synopsis. `year` is the year the suite's lists were issued.
pub fn record(stanza: &Stanza, year: u32) -> Option<Value> {
    let id = stanza.get("Package")?.trim();
    let title = stanza.get("Description")?.lines().next()?.trim();
    if id.is_empty() || title.is_empty() {
        return None;
    }
    let mut creator = stanza.get("Maintainer").map_or("", |m| m.as_str());
    if let Some((name, _address)) = creator.split_once('<') {
        creator = name;
    }
    let creator = creator.trim().trim_matches('"').trim();
    let creator = if creator.is_empty() {
        "Debian"
    } else {
        creator
    };
    let mut keywords: Vec<String> = Vec::new();
    for tag in stanza
        .get("Tag")
        .map_or("", |t| t.as_str())
        .split([',', '\n'])
    {
        let tag = truncate_words(tag, MAX_TERM_CHARS);
        if !tag.is_empty() && !keywords.contains(&tag) {
            keywords.push(tag);
        }
    }
    keywords.truncate(meridian_core::record::MAX_KEYWORDS);
    let project = stanza
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or(id);
    let mut record = json!({
        "id": id,
        "title": truncate_words(title, MAX_TITLE_CHARS),
        "creators": [{ "name": truncate_words(creator, MAX_NAME_CHARS) }],
        "publisher": "Debian",
        "publication_year": year,
        "resource_type": "Software",
        "project": truncate_words(project, MAX_NAME_CHARS),
        "access": "open",
        "visibility": "public",
    });
    if !keywords.is_empty() {
        record["keywords"] = json!(keywords);
    }
    if let Some(section) = stanza.get("Section") {
        let section = section.rsplit('/').next().unwrap_or(section).trim();
        if !section.is_empty() {
            record["disciplines"] = json!([truncate_words(section, MAX_TERM_CHARS)]);
        }
    }
    if let Some(version) = stanza.get("Version") {
        record["dataset_version"] = json!(truncate_words(version, MAX_VERSION_CHARS));
    }
    if let Some(size) = stanza
        .get("Size")
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        record["size_bytes"] = json!(size);
    }
    if let Some(homepage) = stanza.get("Homepage") {
        record["landing_url"] = json!(homepage.trim());
        // A homepage the record model does not take as a URL is left out
        // rather than losing the package.
        if let Err(e) = meridian_core::record::parse_json_line(&record.to_string()) {
            if e.field == "landing_url" {
                record
                    .as_object_mut()
                    .expect("a record is an object")
                    .remove("landing_url");
            }
        }
    }
    Some(record)
}

/// The Packages lists in `dir`, in name order, each with the year of its
/// suite's `InRelease` file.
pub fn package_lists(dir: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the apt lists directory", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let releases: Vec<&String> = names.iter().filter(|n| n.ends_with("_InRelease")).collect();
    let mut lists = Vec::new();
    for name in names.iter().filter(|n| {
        n.ends_with("_Packages")
            || n.ends_with("_Packages.lz4")
            || n.ends_with("_Packages.gz")
            || n.ends_with("_Packages.xz")
    }) {
        let release = releases
            .iter()
            .find(|r| name.starts_with(&format!("{}_", r.trim_end_matches("_InRelease"))))
            .with_context(|| {
                format!(
                    "{}: no InRelease file of its suite in {} (its Date gives the records' year)",
                    name,
                    dir.display()
                )
            })?;
        let path = dir.join(release);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let year = release_year(&text)
            .with_context(|| format!("{}: no Date field with a year", path.display()))?;
        lists.push((dir.join(name), year));
    }
    if lists.is_empty() {
        bail!(
            "no Packages lists in {} (expected files named *_Packages.lz4, as apt-get update \
             leaves them): run apt-get update first",
            dir.display()
        );
    }
    Ok(lists)
}

/// The year of an `InRelease` file's `Date: Sat, 11 Jul 2026 10:16:37 UTC`.
pub fn release_year(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("Date:"))?
        .split_whitespace()
        .find_map(|w| {
            (w.len() == 4)
                .then(|| w.parse::<u32>().ok())
                .flatten()
                .filter(|y| (1900..=9999).contains(y))
        })
}

/// The text of one list, decompressed by apt's own helper.
fn list_text(path: &Path) -> Result<String> {
    let out = Command::new("/usr/lib/apt/apt-helper")
        .arg("cat-file")
        .arg(path)
        .output()
        .with_context(|| {
            format!(
                "{}: cannot run /usr/lib/apt/apt-helper to decompress it",
                path.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{}: apt-helper cat-file failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{}: not UTF-8", path.display()))
}

/// Every package of the lists in `dir` as a record, each name once.
pub fn records(dir: &Path) -> Result<Vec<Value>> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    for (path, year) in package_lists(dir)? {
        for stanza in stanzas(&list_text(&path)?) {
            if let Some(record) = record(&stanza, year) {
                if seen.insert(record["id"].as_str().unwrap_or_default().to_owned()) {
                    all.push(record);
                }
            }
        }
    }
    Ok(all)
}

/// Common English words a query would not be made of.
const STOP_WORDS: &[&str] = &[
    "and", "are", "but", "for", "from", "has", "have", "into", "its", "not", "of", "that", "the",
    "their", "this", "those", "these", "was", "were", "which", "with", "will", "you", "your",
    "can", "all", "any", "via", "use", "using", "used", "other", "more", "most", "such", "than",
    "then", "them", "they", "there", "when", "where", "who", "how", "what", "also", "only", "some",
    "may", "each", "about", "over", "under", "between", "without", "within",
];

/// The words of `text` a query may use: lowercased runs of letters, at
/// least three long, not stop words.
pub fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && w.chars().all(char::is_alphabetic))
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// `count` queries of 1, 2 and 3 words in turn, each a run of adjacent
/// words of the title of a record drawn at random (fixed `seed`), so common
/// and rare words occur as often as the catalogue uses them.
pub fn queries(records: &[Value], count: usize, seed: u64) -> Vec<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    if records.is_empty() {
        return out;
    }
    while out.len() < count {
        let want = out.len() % 3 + 1;
        let record = &records[rng.gen_range(0..records.len())];
        let mut words = query_words(record["title"].as_str().unwrap_or_default());
        words.dedup();
        if words.len() < want {
            continue;
        }
        let start = rng.gen_range(0..=words.len() - want);
        let terms: Vec<String> = words[start..start + want].to_vec();
        let distinct: HashSet<&String> = terms.iter().collect();
        if distinct.len() == terms.len() {
            out.push(terms);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
Package: curl
Version: 7.88.1-10+deb12u15
Maintainer: Alessandro Ghedini <ghedo@debian.org>
Description: command line tool for transferring data with URL syntax
Homepage: https://curl.se/
Tag: implemented-in::c, interface::commandline,
 protocol::ftp, role::program
Section: web
Size: 315764

Package: python3-numpy
Source: numpy (1:1.24.2-1)
Version: 1:1.24.2-1+deb12u1
Maintainer: \"Sandro Tosi\" <morph@debian.org>
Description: Fast array facility to the Python 3 language
Homepage: not a url
Section: contrib/python

Package: no-synopsis
Version: 1
";

    #[test]
    fn packages_map_to_valid_public_records() {
        let all = stanzas(LIST);
        assert_eq!(all.len(), 3);
        let curl = record(&all[0], 2026).unwrap();
        assert_eq!(curl["id"], "curl");
        assert_eq!(
            curl["title"],
            "command line tool for transferring data with URL syntax"
        );
        assert_eq!(curl["creators"][0]["name"], "Alessandro Ghedini");
        assert_eq!(
            curl["keywords"],
            json!([
                "implemented-in::c",
                "interface::commandline",
                "protocol::ftp",
                "role::program"
            ])
        );
        assert_eq!(curl["disciplines"], json!(["web"]));
        assert_eq!(curl["landing_url"], "https://curl.se/");
        assert_eq!(curl["project"], "curl");
        assert_eq!(curl["size_bytes"], 315764);
        assert_eq!(curl["visibility"], "public");
        assert_eq!(curl["publication_year"], 2026);

        let numpy = record(&all[1], 2026).unwrap();
        assert_eq!(numpy["project"], "numpy");
        assert_eq!(numpy["creators"][0]["name"], "Sandro Tosi");
        assert_eq!(numpy["disciplines"], json!(["python"]));
        assert!(numpy.get("landing_url").is_none(), "{numpy}");
        assert!(record(&all[2], 2026).is_none());

        for r in [&curl, &numpy] {
            meridian_core::record::parse_json_line(&r.to_string()).unwrap();
        }
    }

    #[test]
    fn long_values_are_cut_at_a_word_and_the_record_stays_valid() {
        let title = "word ".repeat(400);
        let maintainer = "Name ".repeat(200);
        let text = format!(
            "Package: long\nDescription: {title}\nMaintainer: {maintainer} <a@b.org>\nVersion: 1\n"
        );
        let long = record(&stanzas(&text)[0], 2026).unwrap();
        let cut = long["title"].as_str().unwrap();
        assert!(cut.chars().count() <= MAX_TITLE_CHARS);
        assert!(cut.ends_with("word"), "cut inside a word: {cut:?}");
        assert!(
            long["creators"][0]["name"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= MAX_NAME_CHARS
        );
        meridian_core::record::parse_json_line(&long.to_string()).unwrap();
        assert_eq!(truncate_words("abcdef", 3), "abc");
        assert_eq!(truncate_words("ab cdef", 4), "ab");
    }

    #[test]
    fn release_year_reads_the_date() {
        assert_eq!(
            release_year("Origin: Debian\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"),
            Some(2026)
        );
        assert_eq!(release_year("Origin: Debian\n"), None);
    }

    #[test]
    fn an_empty_directory_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let error = package_lists(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no Packages lists"), "{error}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        std::fs::write(
            dir.path().join("x_dists_y_main_binary-amd64_Packages.lz4"),
            "",
        )
        .unwrap();
        let error = package_lists(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no InRelease"), "{error}");
    }

    #[test]
    fn queries_are_real_title_words_and_reproducible() {
        let all: Vec<Value> = stanzas(LIST)
            .iter()
            .filter_map(|s| record(s, 2026))
            .collect();
        let a = queries(&all, 30, 7);
        assert_eq!(a, queries(&all, 30, 7));
        assert_eq!(a.len(), 30);
        for (i, terms) in a.iter().enumerate() {
            assert_eq!(terms.len(), i % 3 + 1);
            for t in terms {
                assert!(t.len() >= 3 && !STOP_WORDS.contains(&t.as_str()), "{t}");
                assert!(
                    all.iter()
                        .any(|r| query_words(r["title"].as_str().unwrap()).contains(t)),
                    "{t} is in no title"
                );
            }
        }
        assert_eq!(
            query_words("Fast array facility to the Python 3 language"),
            ["fast", "array", "facility", "python", "language"]
        );
    }
}
