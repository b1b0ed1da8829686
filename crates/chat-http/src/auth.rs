//! Who is calling: the `Authenticated` extractor (bearer token or the
//! `jwt_token` cookie) and the token cookie itself.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chat_domain::{Caller, DomainError};

use crate::error::ApiError;
use crate::state::ApiState;

/// The name of the cookie that carries the token.
pub const TOKEN_COOKIE: &str = "jwt_token";

/// The token a request presents: `Authorization: Bearer <jwt>` first, else
/// the `jwt_token` cookie.
pub fn presented_token(req: &HttpRequest) -> Option<String> {
    bearer_token(req).or_else(|| {
        req.cookie(TOKEN_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    })
}

pub(crate) fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// An extractor for routes that need a valid, unrevoked token: a handler
/// taking `Authenticated` only runs for an authenticated caller; anyone
/// else gets 401 (`unauthorized`, `token_revoked` or `invalid_token`).
///
/// ```ignore
/// async fn profile(state: web::Data<ApiState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
///     let user = state.service().profile(&caller).await?;
///     Ok(HttpResponse::Ok().json(user))
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub Caller);

impl std::ops::Deref for Authenticated {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let token = presented_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                DomainError::internal(
                    "ApiState is missing: mount the routes with chat_http::configure",
                )
            })?;
            let token = token.ok_or(DomainError::Unauthenticated)?;
            let caller = state.service().authenticate(&token).await?;
            Ok(Authenticated(caller))
        })
    }
}

/// The cookie that carries a fresh token: `HttpOnly`, `SameSite=Lax`,
/// `Path=/`, `Max-Age` = the token's lifetime, `Secure` in production.
pub(crate) fn token_cookie(token: &str, lifetime_secs: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(TOKEN_COOKIE, token.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(CookieDuration::seconds(lifetime_secs.max(0)))
        .secure(secure)
        .finish()
}

/// The cookie that removes the token cookie (empty, `Max-Age=0`).
pub(crate) fn cleared_token_cookie(secure: bool) -> Cookie<'static> {
    token_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_wins_over_the_cookie() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer abc.def"))
            .cookie(Cookie::new(TOKEN_COOKIE, "from-cookie"))
            .to_http_request();
        assert_eq!(presented_token(&req).as_deref(), Some("abc.def"));
    }

    #[test]
    fn the_cookie_is_used_without_a_bearer() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic dXNlcjpwYXNz"))
            .cookie(Cookie::new(TOKEN_COOKIE, "from-cookie"))
            .to_http_request();
        assert_eq!(presented_token(&req).as_deref(), Some("from-cookie"));
        let none = TestRequest::default().to_http_request();
        assert_eq!(presented_token(&none), None);
    }

    #[test]
    fn the_cookie_has_the_contract_flags() {
        let text = token_cookie("t", 86_400, true).to_string();
        for part in [
            "jwt_token=t",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=86400",
            "Secure",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!token_cookie("t", 1, false).to_string().contains("Secure"));
        assert!(cleared_token_cookie(false)
            .to_string()
            .contains("Max-Age=0"));
    }
}
