//! The browser client: a small chat page (`web/` at the repository root)
//! compiled into the binary, so that a person can chat with nothing but the
//! server running.
//!
//! `GET /` is `index.html`, `GET /app.js` and `GET /style.css` its script
//! and style sheet. Each answer carries a strict `Content-Security-Policy`
//! (no inline script or style, nothing from another origin) and
//! `Cache-Control: no-cache`, so a redeploy is picked up at the next load.
//! The page uses relative URLs only, so it also works when the API is
//! mounted under a prefix or served through a reverse proxy.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// What the page may load and where it may connect: its own origin only
/// (and WebSockets to it), no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const STYLE_CSS: &str = include_str!("../../../web/style.css");

/// One file of the client.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: INDEX_HTML,
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: APP_JS,
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: STYLE_CSS,
    },
];

/// Mounts `GET /`, `GET /app.js` and `GET /style.css`; other methods on
/// those paths get the API's JSON 405.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    for asset in &ASSETS {
        let (content_type, body) = (asset.content_type, asset.body);
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(move || async move { serve(content_type, body) }))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, ApiError>(ApiError::MethodNotAllowed { allow: "GET" })
                })),
        );
    }
}

fn serve(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn each_file_has_its_type_and_the_policy() {
        let app = init_service(App::new().configure(routes)).await;
        for (path, kind) in [
            ("/", "text/html"),
            ("/app.js", "text/javascript"),
            ("/style.css", "text/css"),
        ] {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert!(res.status().is_success(), "{path}");
            let headers = res.headers();
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(content_type.starts_with(kind), "{path}: {content_type}");
            assert_eq!(
                headers.get(header::CONTENT_SECURITY_POLICY),
                Some(&HeaderValue::from_static(CONTENT_SECURITY_POLICY))
            );
            assert_eq!(
                headers.get(header::CACHE_CONTROL),
                Some(&HeaderValue::from_static("no-cache"))
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_inline_or_foreign() {
        assert!(INDEX_HTML.contains(r#"src="app.js""#));
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style="));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(!APP_JS.contains("innerHTML"));
    }
}
