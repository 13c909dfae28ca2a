//! Reading XML documents of any size one record at a time: a streaming
//! scan (quick-xml) that builds a small tree for each metadata element it
//! is asked for (DataCite `resource`, Dublin Core `dc`), with the OAI-PMH
//! header around it when there is one, and the page's resumption token and
//! error. Namespace prefixes are ignored: elements are matched by local name.

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest metadata element accepted, in bytes of element names, text and
/// attributes, checked while it is read: a bigger one is skipped and reported.
pub const MAX_RECORD_XML_BYTES: usize = 1 << 20;
/// Deepest nesting accepted inside a metadata element.
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in a metadata element. An empty element holds no
/// text yet costs a node of the tree; a rich DataCite record has a few
/// thousand.
pub const MAX_RECORD_ELEMENTS: usize = 100_000;
/// Deepest nesting accepted around the metadata elements: the OAI-PMH
/// envelope is four deep (`OAI-PMH/ListRecords/record/metadata`); a deeper
/// document is an error.
pub const MAX_DOCUMENT_DEPTH: usize = 2 * MAX_DEPTH;
/// Longest OAI identifier, datestamp or `responseDate` accepted, in bytes.
/// Identifiers are URIs and datestamps twenty characters long.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;
/// Longest resumption token accepted, in bytes: tokens are opaque, and
/// repositories' are well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest OAI-PMH `error` (code and message) accepted, in bytes.
pub const MAX_ERROR_BYTES: usize = 8 * 1024;
/// Most OAI-PMH `error` elements accepted in one response.
pub const MAX_ERRORS: usize = 16;
/// Most attributes accepted on one element: DataCite's richest carry five
/// or six. Past it the element is refused before more are read, so a tag of
/// millions costs no more than its length.
pub const MAX_ATTRIBUTES: usize = 64;

/// An element: its local name, attributes (local names), text and children.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The children named `item` of the child named `list` (`creators/creator`).
    pub fn list<'a>(
        &'a self,
        list: &'a str,
        item: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.all(list).flat_map(move |l| l.all(item))
    }

    /// The text of the child named `name`, or "".
    pub fn child_text(&self, name: &str) -> &str {
        self.child(name).map_or("", |c| c.text.as_str())
    }
}

/// The OAI-PMH header of the record a metadata element sits in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Header {
    pub identifier: String,
    pub datestamp: String,
    pub deleted: bool,
}

/// What the scan found.
#[derive(Debug)]
pub enum Found {
    /// A metadata element, with the header of its OAI-PMH record if any.
    Metadata {
        line: u64,
        header: Option<Header>,
        element: Result<Element, String>,
        /// Bytes that were not UTF-8 were replaced (U+FFFD).
        replaced: bool,
    },
    /// An OAI-PMH record whose header says `deleted`.
    Deleted { line: u64, header: Header },
    /// A live OAI-PMH record without the metadata element looked for (an
    /// empty `<metadata/>`, another format): nothing to import, and said so.
    Empty { line: u64, header: Header },
    /// An OAI-PMH record refused for its header (a value past its bound),
    /// named by line: the header is not kept.
    Refused { line: u64, reason: String },
}

/// A document that cannot be read on, and where: it is not well-formed
/// XML, is nested deeper than [`MAX_DOCUMENT_DEPTH`], or has an OAI-PMH
/// envelope value past its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct XmlError {
    pub line: u64,
    pub message: String,
}

/// The OAI-PMH parts of a response, filled in as the scan passes them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `resumptionToken` text (empty on the last page) when the element is present.
    pub resumption_token: Option<String>,
    /// `error` elements: code and message.
    pub errors: Vec<(String, String)>,
    /// `responseDate`.
    pub response_date: String,
}

/// Longest piece of a document read as one event (a text, a tag): quick-xml
/// holds an event whole before the scan can weigh it, so a text of a
/// gigabyte in a file would be held whole. Far above any record's bound
/// ([`MAX_RECORD_XML_BYTES`]): past it the document is an error.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Counts the lines consumed from a reader, and refuses to read on past
/// [`MAX_EVENT_BYTES`] since the scan last reset `since_event`.
struct Lines<R> {
    inner: R,
    line: u64,
    since_event: usize,
}

impl<R: BufRead> std::io::Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Lines<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.since_event > MAX_EVENT_BYTES {
            return Err(std::io::Error::other(format!(
                "a text or tag longer than {MAX_EVENT_BYTES} bytes"
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.since_event = self.since_event.saturating_add(amt);
        // The buffer is not empty (it holds `amt` bytes), so this does no I/O.
        if let Ok(buf) = self.inner.fill_buf() {
            let n = amt.min(buf.len());
            self.line += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.inner.consume(amt);
    }
}

/// The scan: an iterator over what it finds; it ends at the end of the
/// document or at the first well-formedness error (yielded last).
pub struct Scan<R: BufRead> {
    reader: Reader<Lines<R>>,
    target: &'static str,
    buf: Vec<u8>,
    /// Local names of the open elements outside a captured one, at most
    /// [`MAX_DOCUMENT_DEPTH`].
    path: Vec<String>,
    /// How many of them are OAI-PMH `record` elements.
    records: usize,
    header: Option<Header>,
    /// Why the header of the current OAI record is refused, when it is.
    header_refused: Option<String>,
    /// Whether the current OAI record has yielded its metadata.
    yielded: bool,
    pub envelope: Envelope,
    done: bool,
}

impl<R: BufRead> Scan<R> {
    /// Scans `input` for elements named `target` (local name).
    pub fn new(input: R, target: &'static str) -> Self {
        let mut reader = Reader::from_reader(Lines {
            inner: input,
            line: 1,
            since_event: 0,
        });
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.trim_text(false);
        Self {
            reader,
            target,
            buf: Vec::new(),
            path: Vec::new(),
            records: 0,
            header: None,
            header_refused: None,
            yielded: false,
            envelope: Envelope::default(),
            done: false,
        }
    }

    fn line(&self) -> u64 {
        self.reader.get_ref().line
    }

    fn error(&mut self, message: impl std::fmt::Display) -> Option<Result<Found, XmlError>> {
        self.done = true;
        Some(Err(self.error_here(message)))
    }

    /// An error at the line the reader has reached.
    fn error_here(&self, message: impl std::fmt::Display) -> XmlError {
        XmlError {
            line: self.line(),
            message: message.to_string(),
        }
    }

    /// Reads the element whose start was just read, to its end. One past a
    /// bound is refused: it is read on to its end keeping nothing, so the
    /// rest of the document is read as before.
    fn capture(&mut self, start: Element) -> Result<(Result<Element, String>, bool), XmlError> {
        let mut size = weight(&start);
        let mut elements = 1usize;
        let mut stack = vec![start];
        let mut replaced = false;
        loop {
            self.begin_event();
            let event = self
                .reader
                .read_event_into(&mut self.buf)
                .map_err(|e| XmlError {
                    line: self.reader.get_ref().line,
                    message: e.to_string(),
                })?;
            let refused = match event {
                Event::Start(e) => match element(&e) {
                    Ok((element, r)) => {
                        replaced |= r;
                        size += weight(&element);
                        elements += 1;
                        stack.push(element);
                        (stack.len() > MAX_DEPTH)
                            .then(|| format!("elements nested deeper than {MAX_DEPTH}"))
                    }
                    // Counted as open, so that it is read to its end.
                    Err(reason) => {
                        stack.push(Element::default());
                        Some(reason)
                    }
                },
                Event::End(_) => {
                    let Some(done) = stack.pop() else {
                        return Err(self.error_here("an end tag without its start"));
                    };
                    match stack.last_mut() {
                        Some(parent) => {
                            parent.children.push(done);
                            None
                        }
                        None => return Ok((Ok(done), replaced)),
                    }
                }
                Event::Text(t) => {
                    let (text, r) = decode(&t);
                    replaced |= r;
                    match quick_xml::escape::unescape_with(&text, html_entity) {
                        Ok(text) => {
                            size += text.len();
                            if let Some(top) = stack.last_mut() {
                                top.text.push_str(&text);
                            }
                            None
                        }
                        Err(e) => Some(format!("text cannot be read: {e}")),
                    }
                }
                Event::CData(t) => {
                    let (text, r) = decode(&t);
                    replaced |= r;
                    size += text.len();
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text);
                    }
                    None
                }
                Event::Eof => return Err(self.ends_inside()),
                _ => None,
            };
            let refused = refused.or_else(|| {
                if size > MAX_RECORD_XML_BYTES {
                    Some(format!(
                        "<{}> holds more than {MAX_RECORD_XML_BYTES} bytes",
                        self.target
                    ))
                } else if elements > MAX_RECORD_ELEMENTS {
                    Some(format!(
                        "<{}> holds more than {MAX_RECORD_ELEMENTS} elements",
                        self.target
                    ))
                } else {
                    None
                }
            });
            if let Some(reason) = refused {
                let depth = stack.len();
                drop(stack);
                self.skip(depth)?;
                return Ok((Err(reason), replaced));
            }
        }
    }

    /// Reads on to the end of an element refused `depth` elements deep,
    /// keeping only that count, however deep it goes.
    fn skip(&mut self, mut depth: usize) -> Result<(), XmlError> {
        while depth > 0 {
            self.begin_event();
            let event = self
                .reader
                .read_event_into(&mut self.buf)
                .map_err(|e| XmlError {
                    line: self.reader.get_ref().line,
                    message: e.to_string(),
                })?;
            match event {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(self.ends_inside()),
                _ => {}
            }
        }
        Ok(())
    }

    fn ends_inside(&self) -> XmlError {
        self.error_here(format!(
            "the document ends at byte {} inside <{}>: it was cut short",
            self.reader.buffer_position(),
            self.target
        ))
    }
}

/// What an element counts toward [`MAX_RECORD_XML_BYTES`]: its name and
/// attributes (its text is counted as it is read).
fn weight(element: &Element) -> usize {
    element.name.len()
        + element
            .attrs
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// HTML entities common in repository metadata that XML does not define.
fn html_entity(name: &str) -> Option<&'static str> {
    match name {
        "nbsp" => Some("\u{a0}"),
        "ndash" => Some("\u{2013}"),
        "mdash" => Some("\u{2014}"),
        "hellip" => Some("\u{2026}"),
        _ => quick_xml::escape::resolve_predefined_entity(name),
    }
}

/// Bytes as text; invalid UTF-8 replaced (and said so).
fn decode(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    let text = String::from_utf8_lossy(bytes);
    let replaced = matches!(text, Cow::Owned(_));
    (text, replaced)
}

/// The element a start tag opens, and whether invalid UTF-8 was replaced;
/// an error past [`MAX_ATTRIBUTES`]. An attribute named twice keeps its
/// first value (quick-xml's own check for that compares every pair).
fn element(start: &BytesStart<'_>) -> Result<(Element, bool), String> {
    let (name, mut replaced) = decode(start.local_name().into_inner());
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut read = start.attributes();
    read.with_checks(false);
    for (n, attr) in read.flatten().enumerate() {
        if n >= MAX_ATTRIBUTES {
            return Err(format!(
                "<{name}> has more than {MAX_ATTRIBUTES} attributes"
            ));
        }
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (local, r1) = decode(key.local_name().into_inner());
        if attrs.iter().any(|(k, _)| *k == local) {
            continue;
        }
        let (value, r2) = decode(&attr.value);
        replaced |= r1 || r2;
        let value = quick_xml::escape::unescape_with(&value, html_entity)
            .map_or_else(|_| value.to_string(), Cow::into_owned);
        attrs.push((local.into_owned(), value));
    }
    Ok((
        Element {
            name: name.into_owned(),
            attrs,
            ..Default::default()
        },
        replaced,
    ))
}

impl<R: BufRead> Iterator for Scan<R> {
    type Item = Result<Found, XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            self.begin_event();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(e) => return self.error(e),
            };
            match event {
                Event::Start(e) => {
                    let start = match element(&e) {
                        Ok((start, _)) => start,
                        // A metadata element: refused as one past another
                        // bound is, and the next one read.
                        Err(reason) if e.local_name().into_inner() == self.target.as_bytes() => {
                            let found = Found::Metadata {
                                line: self.line(),
                                header: self.header.clone().filter(|_| self.in_record()),
                                element: Err(reason),
                                replaced: false,
                            };
                            return self.skip_and_yield(found);
                        }
                        Err(reason) => return self.error(reason),
                    };
                    if start.name == self.target {
                        let line = self.line();
                        if let Some(reason) =
                            self.header_refused.clone().filter(|_| self.in_record())
                        {
                            return self.skip_and_yield(Found::Refused { line, reason });
                        }
                        let header = self.header.clone().filter(|_| self.in_record());
                        match self.capture(start) {
                            Ok((element, replaced)) => {
                                self.yielded = true;
                                return Some(Ok(Found::Metadata {
                                    line,
                                    header,
                                    element,
                                    replaced,
                                }));
                            }
                            Err(e) => {
                                self.done = true;
                                return Some(Err(e));
                            }
                        }
                    }
                    if self.path.len() >= MAX_DOCUMENT_DEPTH {
                        return self
                            .error(format!("elements nested deeper than {MAX_DOCUMENT_DEPTH}"));
                    }
                    let name = start.name.clone();
                    match name.as_str() {
                        "record" => {
                            self.records += 1;
                            self.header = None;
                            self.header_refused = None;
                            self.yielded = false;
                        }
                        "header" if self.in_record() => {
                            self.header = Some(Header {
                                deleted: start.attr("status") == Some("deleted"),
                                ..Default::default()
                            });
                        }
                        "resumptionToken" => self.envelope.resumption_token = Some(String::new()),
                        "error" => {
                            let code = start.attr("code").unwrap_or_default();
                            if self.envelope.errors.len() >= MAX_ERRORS {
                                return self.error(format!(
                                    "more than {MAX_ERRORS} OAI-PMH error elements"
                                ));
                            }
                            if code.len() > MAX_ERROR_BYTES {
                                return self.error(format!(
                                    "error code longer than {MAX_ERROR_BYTES} bytes"
                                ));
                            }
                            self.envelope.errors.push((code.to_owned(), String::new()));
                        }
                        _ => {}
                    }
                    self.path.push(name);
                }
                Event::Text(t) => {
                    let (text, _) = decode(&t);
                    let text = quick_xml::escape::unescape_with(&text, html_entity)
                        .map_or_else(|_| text.to_string(), Cow::into_owned);
                    let parent = self
                        .path
                        .len()
                        .checked_sub(2)
                        .map(|i| self.path[i].as_str());
                    let text = text.trim();
                    match (parent, self.path.last().map(String::as_str)) {
                        (Some("header"), Some(field @ ("identifier" | "datestamp"))) => {
                            let Some(h) = self
                                .header
                                .as_mut()
                                .filter(|_| self.header_refused.is_none())
                            else {
                                continue;
                            };
                            let value = if field == "identifier" {
                                &mut h.identifier
                            } else {
                                &mut h.datestamp
                            };
                            if value.len() + text.len() > MAX_HEADER_VALUE_BYTES {
                                // The record is refused by line; what it held is dropped.
                                self.header = None;
                                self.header_refused = Some(format!(
                                    "the OAI {field} is longer than {MAX_HEADER_VALUE_BYTES} bytes"
                                ));
                            } else {
                                value.push_str(text);
                            }
                        }
                        (_, Some("resumptionToken")) => {
                            if let Some(token) = &mut self.envelope.resumption_token {
                                if token.len() + text.len() > MAX_TOKEN_BYTES {
                                    return self.error(format!(
                                        "resumptionToken longer than {MAX_TOKEN_BYTES} bytes"
                                    ));
                                }
                                token.push_str(text);
                            }
                        }
                        (_, Some("error")) => {
                            if let Some((code, message)) = self.envelope.errors.last_mut() {
                                if code.len() + message.len() + text.len() > MAX_ERROR_BYTES {
                                    return self.error(format!(
                                        "error longer than {MAX_ERROR_BYTES} bytes"
                                    ));
                                }
                                message.push_str(text);
                            }
                        }
                        (_, Some("responseDate")) => {
                            let date = &mut self.envelope.response_date;
                            if date.len() + text.len() > MAX_HEADER_VALUE_BYTES {
                                return self.error(format!(
                                    "responseDate longer than {MAX_HEADER_VALUE_BYTES} bytes"
                                ));
                            }
                            date.push_str(text);
                        }
                        _ => {}
                    }
                }
                Event::End(_) => {
                    let closed = self.path.pop();
                    if closed.as_deref() == Some("record") {
                        self.records = self.records.saturating_sub(1);
                        let header = self.header.take();
                        let refused = self.header_refused.take();
                        if let Some(reason) = refused.filter(|_| !self.yielded) {
                            return Some(Ok(Found::Refused {
                                line: self.line(),
                                reason,
                            }));
                        }
                        if let Some(header) = header.filter(|_| !self.yielded) {
                            let line = self.line();
                            return Some(Ok(if header.deleted {
                                Found::Deleted { line, header }
                            } else {
                                Found::Empty { line, header }
                            }));
                        }
                    }
                }
                Event::Eof => {
                    // quick-xml ends without an error when elements are
                    // still open: a document cut short (a truncated
                    // download or file) would pass for a complete one, a
                    // page without its token for a list's last page.
                    if let Some(open) = self.path.last() {
                        let message = format!(
                            "the document ends at byte {} inside <{}>, {} element(s) still open: \
                             it was cut short",
                            self.reader.buffer_position(),
                            short_name(open),
                            self.path.len()
                        );
                        return self.error(message);
                    }
                    self.done = true;
                    return None;
                }
                _ => {}
            }
        }
    }
}

/// An element name for a message, at most 64 characters.
fn short_name(name: &str) -> String {
    name.chars().take(64).collect()
}

impl<R: BufRead> Scan<R> {
    /// Clears the buffer and the count of bytes [`MAX_EVENT_BYTES`] bounds,
    /// before every event read.
    fn begin_event(&mut self) {
        self.buf.clear();
        self.reader.get_mut().since_event = 0;
    }

    /// Reads past the element whose start was just read and yields `found`
    /// for it, as the current OAI record's.
    fn skip_and_yield(&mut self, found: Found) -> Option<Result<Found, XmlError>> {
        if let Err(e) = self.skip(1) {
            self.done = true;
            return Some(Err(e));
        }
        self.yielded = true;
        Some(Ok(found))
    }

    /// Whether the scan is inside an OAI-PMH `record` element.
    fn in_record(&self) -> bool {
        self.records > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">
  <responseDate>2024-01-02T03:04:05Z</responseDate>
  <ListRecords>
    <record>
      <header><identifier>oai:x:1</identifier><datestamp>2024-01-01</datestamp></header>
      <metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"
          xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A &amp; B&nbsp;C</dc:title><dc:creator/></oai_dc:dc></metadata>
    </record>
    <record>
      <header status="deleted"><identifier>oai:x:2</identifier><datestamp>2024-01-01</datestamp></header>
    </record>
    <resumptionToken cursor="0">tok-1</resumptionToken>
  </ListRecords>
</OAI-PMH>"#;

    #[test]
    fn finds_metadata_with_headers_deletions_and_the_token() {
        let mut scan = Scan::new(PAGE.as_bytes(), "dc");
        let found: Vec<Found> = scan.by_ref().map(Result::unwrap).collect();
        assert_eq!(found.len(), 2);
        match &found[0] {
            Found::Metadata {
                line,
                header,
                element,
                replaced,
            } => {
                assert_eq!(*line, 8);
                assert_eq!(header.as_ref().unwrap().identifier, "oai:x:1");
                let element = element.as_ref().unwrap();
                assert_eq!(element.child_text("title"), "A & B\u{a0}C");
                assert_eq!(element.all("creator").count(), 1);
                assert!(!replaced);
            }
            other => panic!("{other:?}"),
        }
        match &found[1] {
            Found::Deleted { header, .. } => assert_eq!(header.identifier, "oai:x:2"),
            other => panic!("{other:?}"),
        }
        assert_eq!(scan.envelope.resumption_token.as_deref(), Some("tok-1"));
        assert_eq!(scan.envelope.response_date, "2024-01-02T03:04:05Z");
    }

    #[test]
    fn errors_and_broken_documents_are_reported_with_a_line() {
        let doc = r#"<OAI-PMH><error code="noRecordsMatch">nothing here</error></OAI-PMH>"#;
        let mut scan = Scan::new(doc.as_bytes(), "resource");
        assert!(scan.next().is_none());
        assert_eq!(
            scan.envelope.errors,
            vec![("noRecordsMatch".into(), "nothing here".into())]
        );
        let broken = "<a>\n<resource>\n<title>x</titel></resource></a>";
        let error = Scan::new(broken.as_bytes(), "resource")
            .find_map(Result::err)
            .unwrap();
        assert_eq!(error.line, 3, "{error}");
    }

    /// A page cut short after a record, its closing tags and token
    /// missing, is an error naming where it ends: read as complete, it
    /// would pass for the last page of its list.
    #[test]
    fn a_document_cut_short_is_an_error_naming_where_it_ends() {
        let record = r#"<record><header><identifier>oai:x:1</identifier><datestamp>2024-01-01</datestamp></header><metadata><dc><title>t</title></dc></metadata></record>"#;
        let doc = format!("<OAI-PMH>\n<responseDate>2024-01-02T03:04:05Z</responseDate>\n<ListRecords>{record}\n{record}");
        let mut scan = Scan::new(doc.as_bytes(), "dc");
        let found: Vec<Result<Found, XmlError>> = scan.by_ref().collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[..2].iter().all(Result::is_ok), "{found:?}");
        let error = found[2].as_ref().unwrap_err();
        assert_eq!(error.line, 4, "{error}");
        assert!(
            error
                .message
                .contains(&format!("ends at byte {} inside <ListRecords>", doc.len())),
            "{error}"
        );
        assert!(error.message.contains("cut short"), "{error}");
        assert!(scan.envelope.resumption_token.is_none());
        // Cut inside a record's metadata: the same, naming the element.
        let cut = "<OAI-PMH><ListRecords><record><metadata><dc><title>t";
        let error = Scan::new(cut.as_bytes(), "dc")
            .find_map(Result::err)
            .expect("cut short");
        assert!(error.message.contains("inside <dc>"), "{error}");
        // A complete document still ends quietly.
        assert!(Scan::new(PAGE.as_bytes(), "dc").all(|f| f.is_ok()));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_said_so() {
        let doc = b"<resource><title>caf\xe9</title></resource>";
        match Scan::new(&doc[..], "resource").next() {
            Some(Ok(Found::Metadata {
                element, replaced, ..
            })) => {
                assert!(replaced);
                assert_eq!(element.unwrap().child_text("title"), "caf\u{fffd}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversized_record_is_refused_and_the_next_one_read() {
        let big = "x".repeat(MAX_RECORD_XML_BYTES + 10);
        let doc = format!("<all><resource><title>{big}</title></resource><resource><title>ok</title></resource></all>");
        let found: Vec<Found> = Scan::new(doc.as_bytes(), "resource")
            .map(Result::unwrap)
            .collect();
        match (&found[0], &found[1]) {
            (
                Found::Metadata {
                    element: Err(e), ..
                },
                Found::Metadata {
                    element: Ok(ok), ..
                },
            ) => {
                assert!(e.contains("more than"), "{e}");
                assert_eq!(ok.child_text("title"), "ok");
            }
            other => panic!("{other:?}"),
        }
    }

    fn refusal(found: &Found) -> &str {
        match found {
            Found::Metadata {
                element: Err(e), ..
            } => e,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// What a scan of `doc` for `resource` finds: two records, the first
    /// refused for `reason`, the second read; its line and element.
    fn refused_then_read(doc: &str, reason: &str) -> (u64, Element) {
        let found: Vec<Found> = Scan::new(doc.as_bytes(), "resource")
            .map(Result::unwrap)
            .collect();
        assert_eq!(found.len(), 2);
        let e = refusal(&found[0]);
        assert!(e.contains(reason), "{e}");
        match &found[1] {
            Found::Metadata {
                line,
                element: Ok(ok),
                ..
            } => (*line, ok.clone()),
            other => panic!("{other:?}"),
        }
    }

    /// `<a/>` holds no text but costs a node of the tree: a record of
    /// countless empty elements is refused, not built.
    #[test]
    fn a_record_of_countless_empty_elements_is_refused_and_the_next_one_read() {
        let empty = "<a/>".repeat(MAX_RECORD_ELEMENTS + 1);
        let doc = format!(
            "<all><resource>{empty}</resource><resource><title>ok</title></resource></all>"
        );
        let reason = format!("more than {MAX_RECORD_ELEMENTS} elements");
        let (_, ok) = refused_then_read(&doc, &reason);
        assert_eq!(ok.child_text("title"), "ok");
    }

    /// A record nested far past the bound is read to its end keeping only
    /// a count, refused, and the next record read.
    #[test]
    fn a_record_nested_far_too_deep_is_refused_and_the_next_one_read() {
        let depth = 200_000;
        let doc = format!(
            "<all><resource>{}{}</resource>\n<resource><title>ok</title></resource></all>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        );
        let (line, ok) = refused_then_read(&doc, &format!("nested deeper than {MAX_DEPTH}"));
        assert_eq!((line, ok.child_text("title")), (2, "ok"));
    }

    /// A text of any length is not held whole: past [`MAX_EVENT_BYTES`] the
    /// document is an error naming the line, read from a stream that never
    /// holds it (as a file import reads).
    #[test]
    fn a_text_past_the_event_bound_is_an_error_not_held_whole() {
        let head: &[u8] = b"<all>\n<resource><title>";
        let text = std::io::Read::chain(head, std::io::repeat(b'x'));
        let error = Scan::new(std::io::BufReader::new(text), "resource")
            .find_map(Result::err)
            .expect("an error");
        assert_eq!(error.line, 2, "{error}");
        assert!(
            error
                .message
                .contains(&format!("longer than {MAX_EVENT_BYTES} bytes")),
            "{error}"
        );
    }

    /// A tag of countless attributes costs no more than its length: past
    /// the bound, a metadata element (or one inside it) is refused and the
    /// next read; an envelope element is an error naming its line. An
    /// attribute named twice keeps its first value.
    #[test]
    fn elements_of_countless_attributes_are_refused_in_time() {
        let attributes = |n: usize| (0..n).map(|i| format!(r#" a{i}="v""#)).collect::<String>();
        let many = attributes(200_000);
        let next = "<resource><title x=\"1\" x=\"2\">ok</title></resource>";
        let started = std::time::Instant::now();
        for doc in [
            format!("<all><resource{many}><title>t</title></resource>\n{next}</all>"),
            format!("<all><resource><title{many}>t</title></resource>\n{next}</all>"),
        ] {
            let reason = format!("more than {MAX_ATTRIBUTES} attributes");
            let (line, ok) = refused_then_read(&doc, &reason);
            assert_eq!((line, ok.child_text("title")), (2, "ok"));
            assert_eq!(ok.child("title").unwrap().attr("x"), Some("1"));
        }
        let doc = format!("<OAI-PMH>\n<ListRecords{many}></ListRecords></OAI-PMH>");
        let error = Scan::new(doc.as_bytes(), "dc")
            .find_map(Result::err)
            .expect("too many attributes");
        assert_eq!(error.line, 2, "{error}");
        assert!(
            error.message.contains("<ListRecords> has more than"),
            "{error}"
        );
        // Exactly at the bound is fine.
        let doc = format!(
            "<resource{}><title>t</title></resource>",
            attributes(MAX_ATTRIBUTES)
        );
        assert!(Scan::new(doc.as_bytes(), "resource")
            .all(|f| matches!(f, Ok(Found::Metadata { element: Ok(_), .. }))));
        // Quadratic reading of 200,000 attributes took minutes; this, well
        // under a second even unoptimised.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    /// Nesting outside the metadata elements is bounded too: a deeper
    /// document is an error at the line where it went too deep.
    #[test]
    fn a_document_nested_past_the_bound_is_an_error_naming_its_line() {
        let depth = 100_000;
        let doc = format!(
            "<OAI-PMH>\n<ListRecords>\n{}{}</ListRecords></OAI-PMH>",
            "<record>".repeat(depth),
            "</record>".repeat(depth)
        );
        let error = Scan::new(doc.as_bytes(), "dc")
            .find_map(Result::err)
            .expect("too deep");
        assert_eq!(error.line, 3, "{error}");
        assert!(
            error
                .message
                .contains(&format!("nested deeper than {MAX_DOCUMENT_DEPTH}")),
            "{error}"
        );
    }

    /// The token, the date and the errors of a response are bounded, and
    /// one too long is an error: a token cut short would resume the list
    /// at the wrong place.
    #[test]
    fn overlong_envelope_values_are_errors_naming_their_line() {
        let page = |body: String| format!("<OAI-PMH>\n{body}\n</OAI-PMH>");
        let cases = [
            (
                page(format!(
                    "<ListRecords><resumptionToken>{}</resumptionToken></ListRecords>",
                    "t".repeat(MAX_TOKEN_BYTES + 1)
                )),
                "resumptionToken",
            ),
            (
                page(format!(
                    "<responseDate>{}</responseDate>",
                    "2".repeat(MAX_HEADER_VALUE_BYTES + 1)
                )),
                "responseDate",
            ),
            (
                page("<responseDate>2024-01-02T03:04:05Z</responseDate>".repeat(100)),
                "responseDate",
            ),
            (
                page(format!(
                    r#"<error code="badArgument">{}</error>"#,
                    "m".repeat(MAX_ERROR_BYTES + 1)
                )),
                "error",
            ),
            (
                page(r#"<error code="badArgument">m</error>"#.repeat(MAX_ERRORS + 1)),
                "error",
            ),
        ];
        for (doc, what) in cases {
            let mut scan = Scan::new(doc.as_bytes(), "dc");
            let error = scan
                .find_map(Result::err)
                .unwrap_or_else(|| panic!("{what}: no error"));
            assert_eq!(error.line, 2, "{what}: {error}");
            assert!(error.message.contains(what), "{what}: {error}");
        }
    }
}
