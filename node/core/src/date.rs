//! Dates as records carry them: `YYYY`, `YYYY-MM-DD` or an RFC 3339
//! timestamp. A date is kept in canonical text (timestamps in UTC with `Z`)
//! and stands for the span of time it names: a year is the whole year.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a date was refused; the text is shown after the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (expected YYYY, YYYY-MM-DD or RFC 3339)")]
pub struct DateError(pub String);

/// A parsed date with the precision it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Year(i32),
    Day(Date),
    Instant(OffsetDateTime),
}

impl Precision {
    /// Parses any accepted form.
    pub fn parse(text: &str) -> Result<Self, DateError> {
        let text = text.trim();
        let err = || DateError(text.to_owned());
        if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
            let year: i32 = text.parse().map_err(|_| err())?;
            return Ok(Self::Year(year));
        }
        if text.len() == 10 {
            let date = Date::parse(text, format_description!("[year]-[month]-[day]"))
                .map_err(|_| err())?;
            return Ok(Self::Day(date));
        }
        let instant = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| err())?;
        Ok(Self::Instant(instant.to_offset(UtcOffset::UTC)))
    }

    /// The canonical text: what a record stores.
    pub fn canonical(&self) -> String {
        match self {
            Self::Year(year) => format!("{year:04}"),
            Self::Day(date) => format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            Self::Instant(instant) => instant.format(&Rfc3339).unwrap_or_default(),
        }
    }

    /// The first and last second (Unix time, inclusive) of the span named.
    pub fn bounds(&self) -> (i64, i64) {
        let at = |date: Date, time: Time| PrimitiveDateTime::new(date, time).assume_utc();
        let end_of_day = Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT);
        match self {
            Self::Year(year) => {
                let first = Date::from_calendar_date(*year, Month::January, 1);
                let last = Date::from_calendar_date(*year, Month::December, 31);
                match (first, last) {
                    (Ok(first), Ok(last)) => (
                        at(first, Time::MIDNIGHT).unix_timestamp(),
                        at(last, end_of_day).unix_timestamp(),
                    ),
                    _ => (i64::MIN, i64::MAX),
                }
            }
            Self::Day(date) => (
                at(*date, Time::MIDNIGHT).unix_timestamp(),
                at(*date, end_of_day).unix_timestamp(),
            ),
            Self::Instant(instant) => (instant.unix_timestamp(), instant.unix_timestamp()),
        }
    }
}

/// Parses a date and returns its canonical text.
pub fn canonical(text: &str) -> Result<String, DateError> {
    Precision::parse(text).map(|date| date.canonical())
}

/// The inclusive span, in Unix seconds, of a date in any accepted form.
pub fn bounds(text: &str) -> Result<(i64, i64), DateError> {
    Precision::parse(text).map(|date| date.bounds())
}

/// The current time in canonical RFC 3339 form, to the second.
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    Precision::Instant(now).canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_forms_and_canonicalises() {
        assert_eq!(canonical("2018").unwrap(), "2018");
        assert_eq!(canonical("1200").unwrap(), "1200");
        assert_eq!(canonical("2020-04-30").unwrap(), "2020-04-30");
        assert_eq!(
            canonical("2023-03-14T10:00:00+02:00").unwrap(),
            "2023-03-14T08:00:00Z"
        );
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "",
            "18",
            "2020-13-01",
            "2020-02-30",
            "yesterday",
            "2020/01/01",
        ] {
            assert!(canonical(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_year_spans_the_whole_year() {
        let (start, end) = bounds("2020").unwrap();
        assert_eq!(start, 1_577_836_800); // 2020-01-01T00:00:00Z
        assert_eq!(end, 1_609_459_199); // 2020-12-31T23:59:59Z
        let (day_start, day_end) = bounds("2020-12-31").unwrap();
        assert_eq!(day_end, end);
        assert_eq!(day_end - day_start, 86_399);
        let (a, b) = bounds("2020-12-31T23:59:59Z").unwrap();
        assert_eq!((a, b), (end, end));
    }
}
