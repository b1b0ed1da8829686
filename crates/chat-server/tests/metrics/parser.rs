//! The exposition parser itself (`exposition`), on hand-written text.

use crate::exposition::Scrape;

#[test]
fn the_parser_reads_labels_with_braces_escapes_and_special_values() {
    let text = "# HELP x_total Things.\n# TYPE x_total counter\n\
        x_total{route=\"/api/rooms/{roomId}\",q=\"a\\\"b\\\\c\\nd\"} 3\n\
        plain 1.5 1700000000000\n\
        h_bucket{le=\"+Inf\"} 7\n\
        g NaN\n";
    let scrape = Scrape::parse(text);
    assert_eq!(
        scrape.get(
            "x_total",
            &[("route", "/api/rooms/{roomId}"), ("q", "a\"b\\c\nd")]
        ),
        Some(3.0)
    );
    assert_eq!(scrape.get("plain", &[]), Some(1.5));
    assert_eq!(scrape.get("h_bucket", &[("le", "+Inf")]), Some(7.0));
    assert!(scrape.get("g", &[]).is_some_and(f64::is_nan));
    assert_eq!(
        scrape.types.get("x_total").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        scrape.sum("x_total", &[("route", "/api/rooms/{roomId}")]),
        3.0
    );
    assert_eq!(scrape.value("absent_total", &[]), 0.0);
}

#[test]
#[should_panic(expected = "unterminated")]
fn the_parser_refuses_a_broken_line() {
    Scrape::parse("x{a=\"open} 1\n");
}
