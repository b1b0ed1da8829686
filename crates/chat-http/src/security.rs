//! The security headers of every answer, in one middleware: no MIME
//! sniffing, no referrer, and a content security policy that lets nothing
//! load or run unless the answer set a policy of its own (the browser
//! client and the reference page each say what they need).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// The policy of an answer that sets none (JSON, errors): nothing may load,
/// run or frame it.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
/// and, unless the answer has one, [`DEFAULT_CONTENT_SECURITY_POLICY`].
/// Use it with `actix_web::middleware::from_fn`.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::{web, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn every_answer_gets_the_headers_and_a_page_keeps_its_policy() {
        let app = init_service(
            App::new()
                .wrap(from_fn(security_headers))
                .route("/json", web::get().to(HttpResponse::Ok))
                .route(
                    "/page",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header((header::CONTENT_SECURITY_POLICY, "script-src 'self'"))
                            .finish()
                    }),
                ),
        )
        .await;
        for (path, policy) in [
            ("/json", DEFAULT_CONTENT_SECURITY_POLICY),
            ("/page", "script-src 'self'"),
            ("/missing", DEFAULT_CONTENT_SECURITY_POLICY),
        ] {
            let res = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            let headers = res.headers();
            let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
            assert_eq!(
                value(header::X_CONTENT_TYPE_OPTIONS),
                Some("nosniff"),
                "{path}"
            );
            assert_eq!(
                value(header::REFERRER_POLICY),
                Some("no-referrer"),
                "{path}"
            );
            assert_eq!(
                value(header::CONTENT_SECURITY_POLICY),
                Some(policy),
                "{path}"
            );
        }
    }
}
