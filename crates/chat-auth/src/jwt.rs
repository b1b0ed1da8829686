//! HS256 JSON Web Tokens.

use std::fmt;

use chat_domain::{Claims, DomainError, DomainResult, TokenCodec};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// Signs and checks access tokens with HMAC-SHA256 and a shared secret.
///
/// Decoding accepts only HS256 tokens signed with this secret whose claims
/// parse as [`Claims`]. It does not check `exp`, `iat` or `nbf`: the
/// domain compares them with its own (injectable) clock. Every failure is
/// [`DomainError::Unauthenticated`], so a client learns nothing about why.
#[derive(Clone)]
pub struct JwtCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtCodec {
    /// A codec with this secret. The caller decides how long a secret must
    /// be (the server refuses short ones in production).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: hs256_only(),
        }
    }
}

/// Only HS256; `exp` must be present but, like `iat` and `nbf`, is checked
/// by the domain.
fn hs256_only() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    validation
}

impl fmt::Debug for JwtCodec {
    // The keys hold the secret: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtCodec")
            .field("algorithm", &"HS256")
            .finish_non_exhaustive()
    }
}

impl TokenCodec for JwtCodec {
    fn encode(&self, claims: &Claims) -> DomainResult<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| DomainError::internal(format!("signing a token failed: {e}")))
    }

    fn decode(&self, token: &str) -> DomainResult<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| DomainError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chat_domain::{TokenId, UserId, Username};

    use super::*;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    fn claims() -> Claims {
        let user_id = UserId::generate();
        Claims {
            sub: user_id.to_string(),
            user_id,
            username: Username::parse("alice").expect("valid"),
            iat: 1_700_000_000,
            nbf: None,
            exp: 1_700_003_600,
            jti: TokenId::generate(),
        }
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).expect("serializes"))
    }

    #[test]
    fn a_token_round_trips() {
        let codec = JwtCodec::new(SECRET);
        let claims = claims();
        let token = codec.encode(&claims).expect("signs");
        assert_eq!(codec.decode(&token).expect("decodes"), claims);
    }

    #[test]
    fn an_expired_token_still_decodes_because_the_domain_checks_expiry() {
        let codec = JwtCodec::new(SECRET);
        let mut claims = claims();
        claims.iat = 1;
        claims.exp = 2;
        let token = codec.encode(&claims).expect("signs");
        assert_eq!(codec.decode(&token).expect("decodes"), claims);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let token = JwtCodec::new(b"another-secret-another-secret-12345")
            .encode(&claims())
            .expect("signs");
        assert_eq!(
            JwtCodec::new(SECRET).decode(&token),
            Err(DomainError::Unauthenticated)
        );
    }

    #[test]
    fn an_alg_none_token_is_rejected() {
        let header = b64(&serde_json::json!({"alg": "none", "typ": "JWT"}));
        let payload = b64(&serde_json::to_value(claims()).expect("serializes"));
        let codec = JwtCodec::new(SECRET);
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(codec.decode(&token), Err(DomainError::Unauthenticated));
        }
    }

    #[test]
    fn an_hs512_token_with_the_same_secret_is_rejected() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signs");
        assert_eq!(
            JwtCodec::new(SECRET).decode(&token),
            Err(DomainError::Unauthenticated)
        );
    }

    #[test]
    fn a_tampered_payload_is_rejected() {
        let codec = JwtCodec::new(SECRET);
        let token = codec.encode(&claims()).expect("signs");
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged.username = Username::parse("mallory").expect("valid");
        let payload = b64(&serde_json::to_value(forged).expect("serializes"));
        parts[1] = &payload;
        assert_eq!(
            codec.decode(&parts.join(".")),
            Err(DomainError::Unauthenticated)
        );
    }

    #[test]
    fn claims_that_do_not_parse_are_rejected() {
        // Correctly signed, but the username is invalid and user_id missing.
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "username": "a", "exp": 2_000_000_000}),
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signs");
        assert_eq!(
            JwtCodec::new(SECRET).decode(&token),
            Err(DomainError::Unauthenticated)
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let codec = JwtCodec::new(SECRET);
        for token in [
            "",
            "garbage",
            "a.b.c",
            "....",
            "é.é.é",
            "eyJhbGciOiJIUzI1NiJ9..",
        ] {
            assert_eq!(
                codec.decode(token),
                Err(DomainError::Unauthenticated),
                "{token:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", JwtCodec::new(SECRET));
        assert!(!shown.contains("test-secret"));
    }
}
