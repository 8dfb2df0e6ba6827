//! Any text that parses cleanly: its formatted form parses cleanly to the
//! same items, keeps every comment, and is a fixed point of the formatter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_dsl::{format_module, parse_module};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (module, diags) = parse_module(0, text);
    if !diags.is_empty() {
        return;
    }
    let formatted = format_module(&module, text);
    let (again, diags) = parse_module(0, &formatted);
    assert!(
        diags.is_empty(),
        "formatted text does not parse: {diags:?}\n--- input:\n{text}\n--- formatted:\n{formatted}"
    );
    assert_eq!(
        &again.items,
        &module.items,
        "\n--- input:\n{text}\n--- formatted:\n{formatted}"
    );
    let before: Vec<&str> = module.comments.iter().map(|c| c.text.as_str()).collect();
    let after: Vec<&str> = again.comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(before, after, "\n--- formatted:\n{formatted}");
    assert_eq!(
        format_module(&again, &formatted),
        formatted,
        "not idempotent\n--- input:\n{text}"
    );
});
