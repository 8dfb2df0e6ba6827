//! Development aid: parse and check files, print diagnostics.
fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let mut sources = nudge_dsl::Sources::new();
    match nudge_dsl::check_files(&mut sources, &paths) {
        Ok(r) => println!("ok: {:?}", r.summary()),
        Err(d) => print!("{}", sources.render(&d)),
    }
}
