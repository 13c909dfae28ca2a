//! Bytes a local client writes to the admin socket, through the filter that
//! rewrites `:authority` in HTTP/2 header blocks: never a panic or a hang,
//! whatever the frames, and a stream that is not HTTP/2 passes unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_server::admin_socket::authority;

/// The HTTP/2 client preface; most inputs are fuzzed after it.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// libFuzzer's hook aborts on every panic, even one the code under test
/// catches. The filter catches the HPACK decoder's panic on a table size
/// update cut short (the decoder unwraps it); any panic that escapes still
/// aborts the run when the target returns.
fn tolerate_caught_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _abort_on_any = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            let in_decoder = info
                .location()
                .is_some_and(|at| at.file().contains("fluke-hpack"));
            if !in_decoder {
                eprintln!("{info}");
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_caught_decoder_panics();
    let Some((&mode, frames)) = data.split_first() else {
        return;
    };
    let input = if mode % 8 == 0 {
        frames.to_vec()
    } else {
        [PREFACE, frames].concat()
    };
    let mut out = Vec::new();
    let result = futures::executor::block_on(authority::filter(input.as_slice(), &mut out));
    if input.len() >= PREFACE.len() && !input.starts_with(PREFACE) {
        result.expect("a stream that is not HTTP/2 is copied");
        assert_eq!(out, input, "a stream that is not HTTP/2 passes unchanged");
    }
});
