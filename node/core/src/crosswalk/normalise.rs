//! Making messy metadata valid without changing what it says: control
//! characters dropped, whitespace collapsed, over-long terms cut at a word
//! boundary, uncertain or partly unknown dates read as the span they name.
//! Every change is noted, so the import report can say what was done.

use crate::date;
use crate::proto::TemporalCoverage;
use crate::record::{RecordError, MAX_TERM_CHARS};

/// One change made to a record's input to make it valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The record field the change is about (`keywords[3]`, `publication_year`).
    pub field: String,
    /// What was done, with the text before when it is short.
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

/// The changes made while one record is read.
#[derive(Debug, Default)]
pub struct Notes {
    pub changes: Vec<Change>,
}

/// Whether a text may keep line breaks (descriptions) or is one line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OneLine,
    Paragraphs,
}

impl Notes {
    pub fn note(&mut self, field: &str, what: impl Into<String>) {
        self.changes.push(Change {
            field: field.to_owned(),
            what: what.into(),
        });
    }

    /// `raw` without control characters (C0 other than line breaks and tabs
    /// in paragraphs, DEL, C1) and with whitespace collapsed: runs of spaces
    /// become one space, a one-line text loses its line breaks, and
    /// paragraphs keep at most one empty line between them. Trimming the
    /// ends is not noted (XML indentation puts space there); anything else is.
    pub fn text(&mut self, field: &str, raw: &str, shape: Shape) -> String {
        let controls = raw
            .chars()
            .filter(|&c| c.is_control() && !c.is_whitespace())
            .count();
        if controls > 0 {
            self.note(
                field,
                format!("removed {controls} control character(s) (mis-decoded text)"),
            );
        }
        let kept: String = raw
            .chars()
            .filter(|&c| !c.is_control() || c.is_whitespace())
            .collect();
        let out = match shape {
            Shape::OneLine => kept.split_whitespace().collect::<Vec<_>>().join(" "),
            Shape::Paragraphs => {
                let lines: Vec<String> = kept
                    .lines()
                    .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect();
                let mut out = String::with_capacity(kept.len());
                let mut blank = false;
                for line in lines {
                    if line.is_empty() {
                        blank = !out.is_empty();
                        continue;
                    }
                    if !out.is_empty() {
                        out.push_str(if blank { "\n\n" } else { "\n" });
                    }
                    blank = false;
                    out.push_str(&line);
                }
                out
            }
        };
        if collapses_inside_lines(&kept) {
            self.note(field, "whitespace collapsed");
        }
        out
    }

    /// A keyword, discipline or format: one line, cut at the last word
    /// boundary within [`MAX_TERM_CHARS`] when longer.
    pub fn term(&mut self, field: &str, raw: &str) -> String {
        let text = self.text(field, raw, Shape::OneLine);
        let count = text.chars().count();
        if count <= MAX_TERM_CHARS {
            return text;
        }
        let cut = truncate_at_word(&text, MAX_TERM_CHARS);
        self.note(
            field,
            format!(
                "{count} characters cut to {} at a word boundary (at most {MAX_TERM_CHARS})",
                cut.chars().count()
            ),
        );
        cut
    }

    /// A date in the record's form (`YYYY`, `YYYY-MM-DD`, RFC 3339), read
    /// from what repositories write: `2011-00-00` and `2011-05` are the year
    /// (the record holds years or days), `[1998?]`, `ca. 1998`, `c1998` the
    /// year 1998, a timestamp without a zone is taken as UTC. Anything
    /// changed is noted; what cannot be read is an error naming the field.
    pub fn date(&mut self, field: &str, raw: &str) -> Result<String, RecordError> {
        let text = self.text(field, raw, Shape::OneLine);
        if let Ok(canonical) = date::canonical(&text) {
            return Ok(canonical);
        }
        let fixed = fix_date(&text).ok_or_else(|| {
            RecordError::new(
                field,
                format!(
                    "`{}` is not a date (expected YYYY, YYYY-MM-DD or RFC 3339)",
                    short(&text)
                ),
            )
        })?;
        let canonical =
            date::canonical(&fixed).map_err(|e| RecordError::new(field, e.to_string()))?;
        self.note(field, format!("`{}` read as {canonical}", short(&text)));
        Ok(canonical)
    }

    /// A temporal coverage `start/end` (either end may be empty: open),
    /// each end read by [`Notes::date`]; `None` when both ends are empty.
    pub fn date_range(
        &mut self,
        start: &str,
        end: &str,
    ) -> Result<Option<TemporalCoverage>, RecordError> {
        let mut end_of = |field: &str, raw: &str| -> Result<String, RecordError> {
            if raw.trim().is_empty() {
                Ok(String::new())
            } else {
                self.date(field, raw)
            }
        };
        let start = end_of("temporal.start", start)?;
        let end = end_of("temporal.end", end)?;
        Ok((!start.is_empty() || !end.is_empty()).then_some(TemporalCoverage { start, end }))
    }

    /// The year of a date ([`Notes::date`]'s rules), as written: a time
    /// with an offset is not moved into another year by its conversion to
    /// UTC (`2020-12-31T20:00:00-05:00` is of 2020).
    pub fn year(&mut self, field: &str, raw: &str) -> Result<u32, RecordError> {
        let date = self.date(field, raw)?;
        let raw = raw.trim();
        let written = raw
            .get(..4)
            .filter(|year| year.bytes().all(|b| b.is_ascii_digit()))
            .filter(|_| !raw[4..].starts_with(|c: char| c.is_ascii_digit()));
        written
            .unwrap_or(&date[..4])
            .parse()
            .map_err(|_| RecordError::new(field, format!("`{date}` has no year")))
    }
}

/// Whether collapsing `text` changes more than the space around line
/// breaks (which pretty-printed XML puts there): a run of spaces or a tab
/// inside a line.
fn collapses_inside_lines(text: &str) -> bool {
    text.lines()
        .any(|line| line.trim().contains("  ") || line.trim().contains('\t'))
}

/// At most `max` characters of `text`, cut after the last whole word.
pub fn truncate_at_word(text: &str, max: usize) -> String {
    let end = text
        .char_indices()
        .nth(max)
        .map_or(text.len(), |(at, _)| at);
    let head = &text[..end];
    if end == text.len() {
        return head.to_owned();
    }
    // Cut at the last space when the next character does not continue a word.
    let next_is_space = text[end..].starts_with(char::is_whitespace);
    let cut = if next_is_space {
        head
    } else {
        match head.rfind(char::is_whitespace) {
            Some(at) if at > 0 => &head[..at],
            _ => head,
        }
    };
    cut.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-'))
        .to_owned()
}

/// The date a repository meant, in a form [`date::canonical`] reads, or
/// `None` when it cannot be told.
fn fix_date(text: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Uncertain years: `[1998?]`, `1998?`, `(1998)`, `ca. 1998`, `c1998`, `circa 1998`.
    let bare =
        text.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '?') || c.is_whitespace());
    let lower = bare.to_ascii_lowercase();
    let bare = ["circa", "ca.", "ca", "c.", "c"]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .map_or(bare, |rest| &bare[bare.len() - rest.len()..])
        .trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '?') || c.is_whitespace());
    if bare.len() == 4 && digits(bare) {
        return Some(bare.to_owned());
    }
    // `YYYY-00-00`, `YYYY-MM-00`, `YYYY-00`, `YYYY-MM`: the record holds the year.
    let parts: Vec<&str> = bare.split('-').collect();
    match parts.as_slice() {
        [year, month] if year.len() == 4 && digits(year) && month.len() <= 2 && digits(month) => {
            return Some((*year).to_owned())
        }
        [year, month, day]
            if year.len() == 4
                && digits(year)
                && digits(month)
                && digits(day)
                && (*month == "00" || *day == "00" || *day == "0" || *month == "0") =>
        {
            return Some((*year).to_owned())
        }
        _ => {}
    }
    // A timestamp with `T` or a space, to the second or the minute, with a
    // zone or without one (taken as UTC). `get` rather than slicing: text
    // of any script reaches here, and byte 10 may fall inside a character.
    let (day, time) = (bare.get(..10)?, bare.get(10..)?);
    let time = time.strip_prefix(['T', ' '])?;
    let looks_like_time = time
        .get(..3)
        .and_then(|h| h.strip_suffix(':'))
        .is_some_and(digits);
    if !looks_like_time || date::canonical(day).is_err() {
        return None;
    }
    let (clock, zone) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => (&time[..at], &time[at..]),
        None => (time, ""),
    };
    let zone = if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        "Z"
    } else {
        zone
    };
    let hh_mm =
        |t: &str| t.len() == 5 && t.as_bytes()[2] == b':' && digits(&t[..2]) && digits(&t[3..]);
    let clock = if hh_mm(clock) {
        format!("{clock}:00")
    } else {
        clock.to_owned()
    };
    let stamp = format!("{day}T{clock}{zone}");
    if date::canonical(&stamp).is_ok() {
        return Some(stamp);
    }
    // A date with a time that cannot be read: the day is what is known.
    Some(day.to_owned())
}

/// A text shortened for a message.
pub fn short(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_removed_and_noted() {
        // U+0085 (NEL) is a line break: it collapses like one.
        let mut notes = Notes::default();
        let text = notes.text(
            "title",
            "Sea ice\u{85} thickness\u{9c}\u{0}",
            Shape::OneLine,
        );
        assert_eq!(text, "Sea ice thickness");
        assert_eq!(notes.changes.len(), 1);
        assert!(
            notes.changes[0].what.contains("2 control"),
            "{:?}",
            notes.changes
        );
    }

    #[test]
    fn whitespace_is_collapsed_and_noted_but_indentation_is_not() {
        let mut notes = Notes::default();
        assert_eq!(
            notes.text("title", "  Sea   ice\n  thickness ", Shape::OneLine),
            "Sea ice thickness"
        );
        assert_eq!(notes.changes[0].what, "whitespace collapsed");
        let mut notes = Notes::default();
        assert_eq!(
            notes.text("title", "\n    Sea ice\n  ", Shape::OneLine),
            "Sea ice"
        );
        assert!(notes.changes.is_empty(), "{:?}", notes.changes);
        let mut notes = Notes::default();
        let text = notes.text(
            "description",
            "\n      First line.\n      Second line.\n\n\n      New paragraph.\n    ",
            Shape::Paragraphs,
        );
        assert_eq!(text, "First line.\nSecond line.\n\nNew paragraph.");
        assert!(notes.changes.is_empty(), "{:?}", notes.changes);
    }

    #[test]
    fn long_terms_are_cut_at_a_word_boundary() {
        let mut notes = Notes::default();
        let long = "permafrost ".repeat(30);
        let term = notes.term("keywords[0]", &long);
        assert!(term.chars().count() <= MAX_TERM_CHARS);
        assert!(term.ends_with("permafrost"), "{term}");
        assert!(
            notes.changes[0].what.contains("cut to"),
            "{:?}",
            notes.changes
        );
        // One word longer than the limit is cut inside it.
        let word = "x".repeat(MAX_TERM_CHARS + 5);
        assert_eq!(notes.term("k", &word).chars().count(), MAX_TERM_CHARS);
        assert_eq!(truncate_at_word("alpha beta gamma", 12), "alpha beta");
        assert_eq!(truncate_at_word("alpha beta gamma", 10), "alpha beta");
        assert_eq!(truncate_at_word("alpha beta", 50), "alpha beta");
    }

    /// Byte 10 of these falls inside a character: reading the day by
    /// slicing there panicked, and a harvest retried the page for ever.
    #[test]
    fn dates_in_other_scripts_are_refused_not_a_panic() {
        for raw in [
            "平成30年3月4日",
            "2018年03月04日 10時",
            "２０１８-０３-０４T10:11:12",
            "2018-03-0€T10:11",
            "2018-03-04T1é",
        ] {
            let mut notes = Notes::default();
            let error = notes.date("d", raw).unwrap_err();
            assert_eq!(error.field, "d");
            assert!(error.reason.contains("is not a date"), "{raw}: {error}");
            assert!(error.reason.contains(raw), "{raw}: {error}");
        }
    }

    /// W3CDTF allows a time to the minute (`hh:mmTZD`); seconds are 00.
    #[test]
    fn timestamps_to_the_minute_are_read() {
        for (raw, want) in [
            ("2020-03-04T10:11Z", "2020-03-04T10:11:00Z"),
            ("2020-03-04T10:11+01:00", "2020-03-04T09:11:00Z"),
            ("2020-03-04T10:11-05:00", "2020-03-04T15:11:00Z"),
            ("2020-03-04 10:11", "2020-03-04T10:11:00Z"),
            ("2020-03-04T10:11", "2020-03-04T10:11:00Z"),
            // A time that cannot be read: the day is what is known.
            ("2020-03-04T25:61", "2020-03-04"),
        ] {
            let mut notes = Notes::default();
            assert_eq!(notes.date("d", raw).as_deref(), Ok(want), "{raw}");
            assert_eq!(notes.changes.len(), 1, "{raw}: {:?}", notes.changes);
        }
    }

    #[test]
    fn repository_dates_are_read_and_noted() {
        for (raw, want) in [
            ("2011-00-00", "2011"),
            ("2011-05-00", "2011"),
            ("2011-05", "2011"),
            ("[1998?]", "1998"),
            ("1998?", "1998"),
            ("ca. 1998", "1998"),
            ("c1998", "1998"),
            ("circa 1998", "1998"),
            ("2020-03-04 10:11:12", "2020-03-04T10:11:12Z"),
            ("2020-03-04T10:11:12", "2020-03-04T10:11:12Z"),
        ] {
            let mut notes = Notes::default();
            assert_eq!(notes.date("d", raw).as_deref(), Ok(want), "{raw}");
            assert_eq!(notes.changes.len(), 1, "{raw}: {:?}", notes.changes);
            assert!(notes.changes[0].what.contains(want), "{:?}", notes.changes);
        }
        let mut notes = Notes::default();
        assert_eq!(notes.date("d", "2011-05-03").as_deref(), Ok("2011-05-03"));
        assert_eq!(
            notes.date("d", "2011-05-03T10:00:00+02:00").as_deref(),
            Ok("2011-05-03T08:00:00Z")
        );
        assert!(notes.changes.is_empty());
        for bad in ["sometime", "2011-13-45", "19", "1998-1999", ""] {
            let error = notes.date("publication_year", bad).unwrap_err();
            assert_eq!(error.field, "publication_year");
            assert!(error.reason.contains("not a date"), "{bad}: {error}");
        }
        assert_eq!(notes.year("y", "[1998?]"), Ok(1998));
        assert_eq!(notes.year("y", "2004-07-01"), Ok(2004));
    }
}
