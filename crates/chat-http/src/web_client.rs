//! The browser client: a small chat page (`web/` in this crate) compiled
//! into the binary, so that a person can chat with nothing but the server
//! running.
//!
//! `GET /` is `index.html`, `GET /style.css` its style sheet, and each of
//! its ES modules (`GET /app.js`, which imports the others) is served as
//! `text/javascript` at `/<name>.js`: browsers refuse a module of any other
//! type, and there is no build step. Each answer carries a strict `Content-Security-Policy`
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

const INDEX_HTML: &str = include_str!("../web/index.html");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// Every module of the client, by the path the page and the other modules
/// import it from.
const MODULES: [(&str, &str); 10] = [
    ("/app.js", include_str!("../web/app.js")),
    ("/api.js", include_str!("../web/api.js")),
    ("/composer.js", include_str!("../web/composer.js")),
    ("/connection.js", include_str!("../web/connection.js")),
    ("/conversations.js", include_str!("../web/conversations.js")),
    ("/dom.js", include_str!("../web/dom.js")),
    ("/render.js", include_str!("../web/render.js")),
    ("/session.js", include_str!("../web/session.js")),
    ("/state.js", include_str!("../web/state.js")),
    ("/unread.js", include_str!("../web/unread.js")),
];

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// One file of the client.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page, its style sheet and its modules.
fn assets() -> impl Iterator<Item = Asset> {
    [
        Asset {
            path: "/",
            content_type: "text/html; charset=utf-8",
            body: INDEX_HTML,
        },
        Asset {
            path: "/style.css",
            content_type: "text/css; charset=utf-8",
            body: STYLE_CSS,
        },
    ]
    .into_iter()
    .chain(MODULES.iter().map(|&(path, body)| Asset {
        path,
        content_type: JAVASCRIPT,
        body,
    }))
}

/// Mounts `GET /`, `GET /style.css` and `GET /<module>.js`; other methods
/// on those paths get the API's JSON 405.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    for asset in assets() {
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
        let files = [("/", "text/html"), ("/style.css", "text/css")]
            .into_iter()
            .chain(MODULES.iter().map(|&(path, _)| (path, "text/javascript")));
        for (path, kind) in files {
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
        assert!(INDEX_HTML.contains(r#"<script type="module" src="app.js"></script>"#));
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style="));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        for (path, body) in MODULES {
            assert!(!body.contains("innerHTML"), "{path}");
            assert!(!body.contains("outerHTML"), "{path}");
            assert!(!body.contains("insertAdjacentHTML"), "{path}");
            assert!(!body.contains("eval("), "{path}");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{path}"
            );
        }
    }

    /// Every module another one imports is served, under the name it is
    /// imported by, and every served module is reachable from `app.js`.
    #[test]
    fn every_import_is_served_and_every_module_is_used() {
        let served: Vec<&str> = MODULES.iter().map(|&(path, _)| path).collect();
        let mut reached = vec!["/app.js"];
        let mut next = 0;
        while let Some(&path) = reached.get(next) {
            next += 1;
            let body = MODULES
                .iter()
                .find(|&&(p, _)| p == path)
                .map(|&(_, body)| body)
                .unwrap_or_default();
            for import in body.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap_or_default();
                let imported = format!("/{name}");
                let known = served.iter().find(|&&p| p == imported);
                assert!(
                    known.is_some(),
                    "{path} imports {name}, which is not served"
                );
                if let Some(&p) = known {
                    if !reached.contains(&p) {
                        reached.push(p);
                    }
                }
            }
        }
        let mut unused: Vec<&str> = served
            .into_iter()
            .filter(|p| !reached.contains(p))
            .collect();
        unused.sort_unstable();
        assert!(
            unused.is_empty(),
            "served but imported by nothing: {unused:?}"
        );
    }
}
