//! A search as an anonymous client sends it: query text, dates and a
//! cursor are untrusted. Parsing and planning never panic, and refuse
//! rather than accept a request the index could not run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::query::{expr, SearchRequest};

fuzz_target!(|input: (&str, &str, &str, &str)| {
    let (text, time_from, time_to, after) = input;
    let parsed = expr::parse(text);
    let request = SearchRequest {
        text: text.to_owned(),
        time_from: Some(time_from.to_owned()),
        time_to: Some(time_to.to_owned()),
        after: Some(after.to_owned()),
        ..SearchRequest::default()
    };
    // A plan needs a query that parses: one rule, not two.
    if request.plan().is_ok() {
        assert!(parsed.is_ok(), "`{text}` planned but does not parse");
    }
});
