//! Text from input quoted in an error message: bounded and escaped, so
//! that a value as long as a message, or holding control characters, never
//! reaches a reply or a terminal as it is.

/// Text for an error message: at most 60 characters of it, escaped.
pub(crate) fn short_text(value: &str) -> String {
    let mut shown: String = value.chars().take(60).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    shown.escape_debug().to_string()
}
