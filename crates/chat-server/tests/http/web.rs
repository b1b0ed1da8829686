//! The browser client served by the binary: the page, its script and its
//! style sheet, each with a strict Content-Security-Policy.

use reqwest::{header, StatusCode};

use crate::support::{expect_error, TestApp};

backend_tests!(
    the_page_is_served_with_a_strict_policy,
    the_script_and_style_sheet_are_served,
    the_page_answers_only_get,
);

/// The policy the page must be served with: nothing inline, nothing from
/// another origin, no framing.
const POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

fn header_of(res: &reqwest::Response, name: header::HeaderName) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn the_page_is_served_with_a_strict_policy(app: TestApp) {
    let res = app.client.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header_of(&res, header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header_of(&res, header::CONTENT_SECURITY_POLICY), POLICY);
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
    let body = res.text().await.expect("body");
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(body.contains(r#"<script type="module" src="app.js"></script>"#));
    assert!(body.contains(r#"href="style.css""#));
}

async fn the_script_and_style_sheet_are_served(app: TestApp) {
    for (path, kind, marker) in [
        ("/app.js", "text/javascript", "./connection.js"),
        ("/connection.js", "text/javascript", "api/ws/connect"),
        ("/composer.js", "text/javascript", "/reactions/"),
        ("/style.css", "text/css", ".messages"),
    ] {
        let res = app.client.get(app.url(path)).send().await.expect(path);
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            header_of(&res, header::CONTENT_TYPE).starts_with(kind),
            "{path}"
        );
        assert_eq!(header_of(&res, header::CONTENT_SECURITY_POLICY), POLICY);
        assert_eq!(header_of(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let body = res.text().await.expect("body");
        assert!(body.contains(marker), "{path} lacks {marker}");
    }
}

async fn the_page_answers_only_get(app: TestApp) {
    let res = app.client.post(app.url("/")).send().await.expect("POST /");
    expect_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app
        .client
        .get(app.url("/index.html.bak"))
        .send()
        .await
        .expect("GET unknown");
    expect_error(res, StatusCode::NOT_FOUND, "not_found").await;
}
