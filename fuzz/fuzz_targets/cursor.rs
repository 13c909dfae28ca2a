//! Search cursors come back from clients: opening one never panics, only a
//! cursor this node sealed opens, and what opens is what was sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::query::cursor::{Cursor, CursorKey};

fuzz_target!(|input: (&str, &str, u64)| {
    let (sealed, token, issued) = input;
    let key = CursorKey::new(zeroize::Zeroizing::new([3u8; 32]));
    let now = issued;
    if let Ok((opened, at)) = key.open(sealed, now) {
        // Only sealing makes a cursor that opens: the fuzzer cannot forge
        // the MAC, so the text must be one this key sealed.
        assert_eq!(
            key.seal(&opened, at),
            sealed,
            "a cursor opened that was never sealed"
        );
    }
    let _ = Cursor::decode(token);
    if token.len() <= 1024 {
        let sealed = key.seal(token, issued);
        assert_eq!(
            key.open(&sealed, issued).ok(),
            Some((token.to_owned(), issued))
        );
    }
});
