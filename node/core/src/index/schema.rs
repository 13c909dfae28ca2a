//! The tantivy schema of the holdings index and how a `DatasetRecord`
//! becomes a document of it.
//!
//! Text fields are analyzed for search; filter and facet fields are raw
//! strings with fast columns; sorts, ranges and the spatial check read
//! fast columns only, so a search loads stored documents for the returned
//! page alone. Changing anything here (fields, options, analyzers) changes
//! what is on disk: bump [`SCHEMA_VERSION`].

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TextAnalyzerBuilder, TokenizerManager,
};
use tantivy::TantivyDocument;

use super::spatial::Rect;
use super::stem::MemoStemmer;
use crate::proto::DatasetRecord;
use crate::query::expr::{TextField, MAX_WORD_BYTES};
use crate::record::{access_name, visibility_name};

/// Version of the on-disk layout: schema and analyzers. An index written
/// under another version is refused and must be rebuilt. Version 4 added
/// [`Fields::doi_key`].
pub(crate) const SCHEMA_VERSION: u32 = 4;

/// English text: words, lower case, ASCII-folded, stemmed.
pub(crate) const TEXT_ANALYZER: &str = "meridian_text";
/// Names and prefixes: like [`TEXT_ANALYZER`] without stemming.
pub(crate) const PLAIN_ANALYZER: &str = "meridian_plain";

/// Separates origin and id in the unique key; sorts below every other
/// character, so key order is (origin, id) order.
const KEY_SEPARATOR: char = '\u{0}';

/// Fast-column names the collector reads.
pub(crate) mod column {
    pub const KEY: &str = "key";
    pub const UPDATED: &str = "updated";
    pub const SIZE: &str = "size";
    pub const YEAR: &str = "year";
    pub const BOX_WEST: &str = "box_west";
    pub const BOX_SOUTH: &str = "box_south";
    pub const BOX_EAST: &str = "box_east";
    pub const BOX_NORTH: &str = "box_north";
}

/// Handles of every field of the schema.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub schema: Schema,
    /// origin + NUL + id: the unique key, for replacement and tie-breaks.
    pub key: Field,
    pub origin: Field,
    pub id: Field,
    pub version: Field,
    pub title: Field,
    pub description: Field,
    pub keyword: Field,
    pub creator: Field,
    pub project: Field,
    pub discipline: Field,
    pub access: Field,
    pub visibility: Field,
    /// Who may see the record, as terms (see [`crate::visibility::audience_terms`]).
    pub audience: Field,
    pub license: Field,
    pub format: Field,
    pub year: Field,
    /// `updated_at` in Unix seconds, for sorting.
    pub updated: Field,
    /// `updated_at` as the record writes it.
    pub updated_at: Field,
    pub size: Field,
    pub doi: Field,
    /// The DOI as copies of one dataset at several origins share it
    /// ([`crate::record::canonical_doi`]), one raw term; absent without a
    /// DOI. Not stored: a search looks up a hit's other copies by it
    /// (docs/decisions/doi-registrant.md).
    pub doi_key: Field,
    /// Temporal coverage in Unix seconds; absent without coverage.
    pub time_start: Field,
    pub time_end: Field,
    /// One value per box part, aligned across the four fields.
    pub box_west: Field,
    pub box_south: Field,
    pub box_east: Field,
    pub box_north: Field,
}

impl Fields {
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let text = |analyzer: &str, stored: bool| {
            let options = TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            );
            if stored {
                options.set_stored()
            } else {
                options
            }
        };
        let facet = STRING | FAST;
        let fast_i64 = NumericOptions::default().set_fast();
        let fast_f64 = NumericOptions::default().set_fast();
        let key = builder.add_text_field(column::KEY, STRING | FAST);
        let origin = builder.add_text_field("origin", facet.clone() | STORED);
        let id = builder.add_text_field("id", STORED);
        let version = builder.add_u64_field("version", STORED);
        let title = builder.add_text_field("title", text(TEXT_ANALYZER, true));
        let description = builder.add_text_field("description", text(TEXT_ANALYZER, true));
        let keyword = builder.add_text_field("keyword", text(TEXT_ANALYZER, false));
        let creator = builder.add_text_field("creator", text(PLAIN_ANALYZER, false));
        let project = builder.add_text_field("project", text(TEXT_ANALYZER, false));
        let discipline = builder.add_text_field("discipline", facet.clone());
        let access = builder.add_text_field("access", facet.clone() | STORED);
        let visibility = builder.add_text_field("visibility", STORED);
        let audience = builder.add_text_field("audience", STRING);
        let license = builder.add_text_field("license", facet.clone());
        let format = builder.add_text_field("format", facet);
        let year = builder.add_u64_field(column::YEAR, FAST | STORED);
        let updated = builder.add_i64_field(column::UPDATED, fast_i64.clone());
        let updated_at = builder.add_text_field("updated_at", STORED);
        let size = builder.add_u64_field(column::SIZE, FAST | STORED);
        let doi = builder.add_text_field("doi", STRING | STORED);
        let doi_key = builder.add_text_field("doi_key", STRING);
        let time_start = builder.add_i64_field("time_start", fast_i64.clone());
        let time_end = builder.add_i64_field("time_end", fast_i64);
        let box_west = builder.add_f64_field(column::BOX_WEST, fast_f64.clone());
        let box_south = builder.add_f64_field(column::BOX_SOUTH, fast_f64.clone());
        let box_east = builder.add_f64_field(column::BOX_EAST, fast_f64.clone());
        let box_north = builder.add_f64_field(column::BOX_NORTH, fast_f64);
        Self {
            schema: builder.build(),
            key,
            origin,
            id,
            version,
            title,
            description,
            keyword,
            creator,
            project,
            discipline,
            access,
            visibility,
            audience,
            license,
            format,
            year,
            updated,
            updated_at,
            size,
            doi,
            doi_key,
            time_start,
            time_end,
            box_west,
            box_south,
            box_east,
            box_north,
        }
    }

    /// The index field of a query text field.
    pub fn text(&self, field: TextField) -> Field {
        match field {
            TextField::Title => self.title,
            TextField::Description => self.description,
            TextField::Keyword => self.keyword,
            TextField::Creator => self.creator,
            TextField::Project => self.project,
        }
    }

    /// The document of a record. The caller has excluded tombstones.
    pub fn document(&self, record: &DatasetRecord) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.key, record_key(&record.origin, &record.id));
        doc.add_text(self.origin, &record.origin);
        doc.add_text(self.id, &record.id);
        doc.add_u64(self.version, record.version);
        doc.add_text(self.title, &record.title);
        doc.add_text(self.description, &record.description);
        // Subjects drawn from a vocabulary are keywords to a searcher too.
        for keyword in &record.keywords {
            doc.add_text(self.keyword, keyword);
        }
        for subject in &record.subjects {
            doc.add_text(self.keyword, &subject.value);
        }
        for creator in &record.creators {
            doc.add_text(self.creator, &creator.name);
        }
        if !record.project.is_empty() {
            doc.add_text(self.project, &record.project);
        }
        // What funded the work is searched as its project: funders and awards.
        for funding in &record.funding_references {
            doc.add_text(self.project, &funding.funder_name);
            if !funding.award_title.is_empty() {
                doc.add_text(self.project, &funding.award_title);
            }
        }
        for discipline in &record.disciplines {
            doc.add_text(self.discipline, discipline);
        }
        doc.add_text(self.access, access_name(record.access));
        doc.add_text(self.visibility, visibility_name(record.visibility));
        for term in
            crate::visibility::audience_terms(&record.origin, record.visibility, &record.groups)
        {
            doc.add_text(self.audience, term);
        }
        if !record.license.is_empty() {
            doc.add_text(self.license, &record.license);
        }
        for format in &record.formats {
            doc.add_text(self.format, format);
        }
        if record.publication_year > 0 {
            doc.add_u64(self.year, u64::from(record.publication_year));
        }
        if let Ok((first, _)) = crate::date::bounds(&record.updated_at) {
            doc.add_i64(self.updated, first);
        }
        doc.add_text(self.updated_at, &record.updated_at);
        doc.add_u64(self.size, record.size_bytes);
        if !record.doi.is_empty() {
            doc.add_text(self.doi, &record.doi);
        }
        if let Some(doi_key) = crate::search::doi_key(&record.doi) {
            doc.add_text(self.doi_key, &doi_key);
        }
        if let Some((start, end)) = temporal_span(record) {
            doc.add_i64(self.time_start, start);
            doc.add_i64(self.time_end, end);
        }
        // Boxes, points and the bounding boxes of polygons.
        let boxes = crate::record::record_boxes(record);
        for part in boxes.iter().flat_map(Rect::parts_of) {
            doc.add_f64(self.box_west, part.west);
            doc.add_f64(self.box_south, part.south);
            doc.add_f64(self.box_east, part.east);
            doc.add_f64(self.box_north, part.north);
        }
        doc
    }
}

/// The unique key of a record in the index.
pub(crate) fn record_key(origin: &str, id: &str) -> String {
    format!("{origin}{KEY_SEPARATOR}{id}")
}

/// The record's temporal coverage as an inclusive span of Unix seconds, an
/// empty bound open. `None` when the record states no coverage (both bounds
/// empty) or a bound does not parse (validation refuses such records).
pub(crate) fn temporal_span(record: &DatasetRecord) -> Option<(i64, i64)> {
    let temporal = record.temporal.as_ref()?;
    let (start, end) = (temporal.start.trim(), temporal.end.trim());
    if start.is_empty() && end.is_empty() {
        return None;
    }
    let start = if start.is_empty() {
        i64::MIN
    } else {
        crate::date::bounds(start).ok()?.0
    };
    let end = if end.is_empty() {
        i64::MAX
    } else {
        crate::date::bounds(end).ok()?.1
    };
    Some((start, end))
}

/// Registers the analyzers the schema names; needed on every open, since
/// tantivy does not persist them.
pub(crate) fn register_analyzers(manager: &TokenizerManager) {
    manager.register(TEXT_ANALYZER, plain().filter(MemoStemmer).build());
    manager.register(PLAIN_ANALYZER, plain().build());
}

/// [`TEXT_ANALYZER`] for the few words of a query or of one hit's snippet:
/// the same terms, stemmed without the memo. A memo pays off over a whole
/// corpus; a query clones its analyzer, so a memo would be a table
/// allocated, filled with a few words and dropped on every search.
pub(crate) fn query_text_analyzer() -> TextAnalyzer {
    plain().filter(Stemmer::new(Language::English)).build()
}

/// Words shorter than [`MAX_WORD_BYTES`], lower case, ASCII-folded: every
/// analyzer's start.
fn plain() -> TextAnalyzerBuilder<impl tantivy::tokenizer::Tokenizer> {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
}

/// Runs `analyzer` over `text` and returns the terms it produces with
/// their positions.
pub(crate) fn analyze(analyzer: &TextAnalyzer, text: &str) -> Vec<(usize, String)> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        let token = stream.token();
        terms.push((token.position, token.text.clone()));
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query finds what was indexed only if both analyzers give the same
    /// terms at the same positions: folding, long words, punctuation,
    /// numbers and stems alike.
    #[test]
    fn queries_are_analyzed_as_documents_are() {
        let manager = TokenizerManager::default();
        register_analyzers(&manager);
        let indexing = manager.get(TEXT_ANALYZER).expect("registered");
        let query = query_text_analyzer();
        for text in [
            "Sea-ice thickness, Fram Strait (2003–2011): ULS moorings",
            "Océan Glacial Arctique — études des glaciers",
            "running runs ran studies studying analyses analyzed",
            "NaN 1e-9 CO₂ ΔT x-ray",
            &"a".repeat(70),
            "",
        ] {
            assert_eq!(analyze(&query, text), analyze(&indexing, text), "{text}");
        }
    }
}
