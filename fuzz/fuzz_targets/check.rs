//! Any text at all through the whole front end: parse, check, lower into
//! the rule model and render the diagnostics. Nothing may panic or overflow
//! the stack; includes are refused, so the input is the whole ruleset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut sources = nudge_dsl::Sources::new();
        let root = sources.add("fuzz.nudge", text);
        let mut no_includes = |_: &std::path::Path| Err(std::io::Error::other("includes are not fuzzed"));
        if let Err(diagnostics) = nudge_dsl::check(&mut sources, &[root], &mut no_includes) {
            let _ = sources.render(&diagnostics);
        }
    }
});
