//! Inputs found by fuzzing (see `fuzz/`), kept as tests.
//!
//! The fuzz targets check that `parse_module` never panics and that text
//! which parses cleanly formats to text that parses cleanly to the same
//! items, keeps every comment and formats to itself.

use nudge_dsl::ast::Module;
use nudge_dsl::{format_module, parse_module};

fn comment_texts(m: &Module) -> Vec<String> {
    m.comments.iter().map(|c| c.text.clone()).collect()
}

/// Found by `format_roundtrip` (seeded with the example files): a block
/// comment left open ran to the end of the file, the parser said nothing,
/// and the formatter's final newline became part of the comment, so the
/// comment changed on every run. The parser now reports the open comment;
/// the formatter still keeps the comment exactly, for tools that format
/// text with errors.
#[test]
fn unterminated_block_comment_at_end_of_file() {
    for text in [
        "/* x",
        "/*/",
        "event e {}\n/* open\n  and more\n",
        "event e {} /* open",
    ] {
        let (module, diags) = parse_module(0, text);
        assert!(
            diags.iter().any(|d| d.message.contains("never closed")),
            "{text:?}: {diags:?}"
        );
        let formatted = format_module(&module, text);
        let (again, _) = parse_module(0, &formatted);
        assert_eq!(again.items, module.items, "{formatted:?}");
        assert_eq!(
            comment_texts(&again),
            comment_texts(&module),
            "{formatted:?}"
        );
        assert_eq!(format_module(&again, &formatted), formatted);
    }
}

/// Found by `format_roundtrip`: a line comment ending in a space, inside an
/// item. Stepping back over whitespace from the item's end stopped inside
/// the comment, so the second formatting took it for a comment on the same
/// line as the item and moved it there.
#[test]
fn line_comment_ending_in_a_space_inside_an_item() {
    round_trips(" audience // c \no // c");
    round_trips("audience // c \t\no // d  \n// e \nrule r { when a // f \n then m( // g \n) }");
}

/// The `format_roundtrip` fuzz target's check.
#[track_caller]
fn round_trips(text: &str) {
    let (module, diags) = parse_module(0, text);
    assert!(diags.is_empty(), "{diags:?}");
    let formatted = format_module(&module, text);
    let (again, diags) = parse_module(0, &formatted);
    assert!(diags.is_empty(), "{diags:?}\n{formatted}");
    assert_eq!(again.items, module.items, "\n{formatted}");
    assert_eq!(
        comment_texts(&again),
        comment_texts(&module),
        "\n{formatted}"
    );
    assert_eq!(format_module(&again, &formatted), formatted);
}
