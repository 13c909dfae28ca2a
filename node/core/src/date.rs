//! Dates as records carry them: `YYYY`, `YYYY-MM-DD` or an RFC 3339
//! timestamp. A date is kept in canonical text (timestamps in UTC with `Z`)
//! and stands for the span of time it names: a year is the whole year.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a date was refused; the text is shown after the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("`{0}` is not a date (expected YYYY, YYYY-MM-DD or RFC 3339)")]
    Malformed(String),
    #[error("`{0}` is outside the years 0000 to 9999 once converted to UTC")]
    OutOfRange(String),
}

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
        let err = || DateError::Malformed(crate::quote::short_text(text));
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
        // An offset can carry a date written in range out of it
        // (`9999-12-31T23:30:00-01:00`, `0000-01-01T00:30:00+01:00`); the
        // canonical form is UTC, so such a date is refused, never wrapped.
        instant
            .checked_to_offset(UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .map(Self::Instant)
            .ok_or_else(|| DateError::OutOfRange(text.to_owned()))
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
            // `parse` keeps instants within RFC 3339's years, so formatting
            // cannot fail; the fallback keeps the text a date all the same.
            Self::Instant(instant) => instant
                .format(&Rfc3339)
                .unwrap_or_else(|_| format!("{:04}", instant.year())),
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
    fn an_offset_that_carries_a_date_out_of_range_is_refused() {
        for bad in [
            "9999-12-31T23:30:00-01:00",
            "0000-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59-23:59",
        ] {
            assert_eq!(canonical(bad), Err(DateError::OutOfRange(bad.to_owned())));
            assert!(bounds(bad).is_err());
        }
        assert_eq!(
            canonical("9999-12-31T22:30:00-01:00").unwrap(),
            "9999-12-31T23:30:00Z"
        );
        assert_eq!(canonical("9999").unwrap(), "9999");
        assert_eq!(canonical("0000-01-01").unwrap(), "0000-01-01");
    }

    proptest::proptest! {
        /// No text, however odd, makes date handling panic: every input is
        /// either a date whose canonical form parses to itself, or an error.
        #[test]
        fn any_text_is_a_date_or_an_error(
            text in "[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?|\\PC{0,40}"
        ) {
            if let Ok(date) = Precision::parse(&text) {
                let written = date.canonical();
                let again = canonical(&written);
                proptest::prop_assert_eq!(again.as_ref(), Ok(&written));
                let (first, last) = date.bounds();
                proptest::prop_assert!(first <= last);
            }
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
