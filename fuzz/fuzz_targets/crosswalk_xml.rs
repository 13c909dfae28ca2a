//! An XML document as a harvested repository or an operator's file feeds
//! the crosswalk (the first byte picks DataCite XML or Dublin Core): never
//! a panic, every record it yields is valid, and the document is read to
//! its end or to one error, never past it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::crosswalk::{Format, Outcome, XmlRecords};
use meridian_core::record;

fuzz_target!(|input: &[u8]| {
    let Some((&choice, document)) = input.split_first() else {
        return;
    };
    let format = if choice % 2 == 0 {
        Format::DataciteXml
    } else {
        Format::OaiDc
    };
    let mut items = XmlRecords::new(document, format);
    // Each item takes at least a start tag of the input.
    for _ in 0..=document.len() {
        match items.next() {
            None => return,
            Some(Err(_)) => {
                assert!(items.next().is_none(), "the document is read on after an error");
                return;
            }
            Some(Ok(item)) => {
                if let Outcome::Record(converted) = item.outcome {
                    record::validate(&converted.record).expect("a converted record is valid");
                }
            }
        }
    }
    panic!("more items than bytes in the document");
});
