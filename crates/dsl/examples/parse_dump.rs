fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let (m, d) = nudge_dsl::parse_module(0, &text);
    let mut s = nudge_dsl::Sources::new();
    s.add(path, text);
    println!("{:#?}", m.items.len());
    if std::env::args().nth(2).is_some() {
        println!("{:#?}", m);
    }
    print!("{}", s.render(&d));
}
