//! A JSON Lines record as an operator's file or a harvest feeds it: never a
//! panic, and what is accepted is valid and reads back as itself from its
//! own export (`holdings export` → `holdings import` changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::record;

fuzz_target!(|line: &str| {
    let Ok(parsed) = record::parse_json_line(line) else {
        return;
    };
    record::validate(&parsed).expect("a parsed record is valid");
    let exported = record::to_json(&parsed).to_string();
    let again = record::parse_json_line(&exported).expect("the export of a record parses");
    assert_eq!(parsed, again, "export and import again changed the record");
});
