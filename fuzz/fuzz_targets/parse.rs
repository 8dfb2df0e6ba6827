//! Any text at all: the parser reports problems as diagnostics and never
//! panics or overflows the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nudge_dsl::parse_module(0, text);
    }
});
