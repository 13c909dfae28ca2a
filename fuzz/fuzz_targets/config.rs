//! `meridian.toml` and `MERIDIAN_*` overrides as an operator writes them:
//! never a panic, and an accepted configuration written back as TOML (what
//! `init` writes) reads as the same configuration.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meridian_core::config::Config;

fuzz_target!(|input: (&str, Vec<(String, String)>)| {
    let (text, overrides) = input;
    let env: BTreeMap<String, String> = overrides
        .into_iter()
        .take(8)
        .map(|(k, v)| (format!("MERIDIAN_{k}"), v))
        .collect();
    let path = Path::new("meridian.toml");
    if let Ok(config) = Config::parse(text, path, &env) {
        let written = config.to_toml();
        let again = Config::parse(&written, path, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("the written configuration is refused: {e}\n{written}"));
        assert_eq!(written, again.to_toml());
    }
});
