//! Registration, login, authentication, refresh and logout.

use time::Duration;

use super::*;
use crate::error::DomainError;
use crate::values::Password;

/// A register call that must be refused before hashing or storing.
async fn register_refused(username: &str, email: &str, password: &str) -> DomainError {
    let mut h = Harness::new();
    h.hasher.expect_hash().times(0);
    h.users.expect_create_user().times(0);
    h.build()
        .register(username, email, password)
        .await
        .expect_err("invalid input is refused")
}

fn field_of(error: &DomainError) -> &'static str {
    match error {
        DomainError::Validation { field, .. } => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// Expects one hash and one store of the account, and hands back the
/// accounts the store was given.
fn expect_registration(h: &mut Harness) -> Recorder<UserAccount> {
    h.hasher
        .expect_hash()
        .times(1)
        .returning(|p: &Password| Ok(PasswordHash::new(format!("hashed:{}", p.expose()))));
    let stored = Recorder::new();
    let sink = stored.clone();
    h.users
        .expect_create_user()
        .times(1)
        .returning(move |account| {
            sink.push(account.clone());
            Ok(())
        });
    stored
}

#[tokio::test]
async fn register_rejects_a_bad_username_before_any_work() {
    for bad in ["ab", "x".repeat(33).as_str(), "bob smith", "böb"] {
        let err = register_refused(bad, "dave@example.com", "password1").await;
        assert_eq!(field_of(&err), "username", "{bad}");
    }
}

#[tokio::test]
async fn register_rejects_a_bad_email_before_any_work() {
    for bad in ["", "dave", "dave@", "dave@example", "da ve@example.com"] {
        let err = register_refused("dave", bad, "password1").await;
        assert_eq!(field_of(&err), "email", "{bad}");
    }
}

#[tokio::test]
async fn register_rejects_a_7_character_password() {
    let err = register_refused("dave", "dave@example.com", "1234567").await;
    assert_eq!(field_of(&err), "password");
}

#[tokio::test]
async fn register_rejects_a_129_character_password() {
    let err = register_refused("dave", "dave@example.com", &"p".repeat(129)).await;
    assert_eq!(field_of(&err), "password");
}

#[tokio::test]
async fn register_accepts_an_8_character_password() {
    let mut h = Harness::new();
    let stored = expect_registration(&mut h);

    h.build()
        .register("dave", "dave@example.com", "12345678")
        .await
        .expect("8 characters is enough");

    assert_eq!(stored.calls().len(), 1);
}

#[tokio::test]
async fn register_accepts_a_128_character_password() {
    let mut h = Harness::new();
    let stored = expect_registration(&mut h);

    h.build()
        .register("dave", "dave@example.com", &"p".repeat(128))
        .await
        .expect("128 characters is allowed");

    assert_eq!(stored.calls().len(), 1);
}

#[tokio::test]
async fn register_hashes_once_and_stores_the_hash_not_the_password() {
    let mut h = Harness::new();
    let stored = expect_registration(&mut h);

    let user = h
        .build()
        .register("Dave", "dave@example.com", "correct horse")
        .await
        .expect("registers");

    let accounts = stored.calls();
    let [account] = accounts.as_slice() else {
        panic!("expected one stored account, got {accounts:?}");
    };
    assert_eq!(account.password_hash.as_str(), "hashed:correct horse");
    assert_eq!(account.username.as_str(), "Dave");
    assert_eq!(account.email.as_str(), "dave@example.com");
    assert_eq!(account.created_at, now());
    assert_eq!(user, account.to_user(false));
}

#[tokio::test]
async fn a_registered_user_is_offline_and_carries_no_hash() {
    let mut h = Harness::new();
    expect_registration(&mut h);

    let user = h
        .build()
        .register("dave", "dave@example.com", "correct horse")
        .await
        .expect("registers");

    assert!(!user.is_online);
    let json = serde_json::to_value(&user).expect("serializes");
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["created_at", "email", "id", "is_online", "username"],
        "no password or hash on the wire"
    );
    assert!(!json.to_string().contains("hashed:"));
}

#[tokio::test]
async fn register_passes_a_taken_username_through() {
    let mut h = Harness::new();
    h.hasher
        .expect_hash()
        .times(1)
        .returning(|_| Ok(PasswordHash::new("h")));
    h.users
        .expect_create_user()
        .times(1)
        .returning(|_| Err(DomainError::UsernameTaken));

    let err = h
        .build()
        .register("alice", "other@example.com", "correct horse")
        .await;

    assert_eq!(err, Err(DomainError::UsernameTaken));
}

#[tokio::test]
async fn register_passes_a_taken_email_through() {
    let mut h = Harness::new();
    h.hasher
        .expect_hash()
        .times(1)
        .returning(|_| Ok(PasswordHash::new("h")));
    h.users
        .expect_create_user()
        .times(1)
        .returning(|_| Err(DomainError::EmailTaken));

    let err = h
        .build()
        .register("dave", "alice@example.com", "correct horse")
        .await;

    assert_eq!(err, Err(DomainError::EmailTaken));
}

/// Records the claims handed to the codec and signs them as `signed-<jti>`.
fn record_encodes(tokens: &mut MockTokenCodec) -> Recorder<Claims> {
    let recorder = Recorder::new();
    let sink = recorder.clone();
    tokens.expect_encode().returning(move |claims| {
        sink.push(claims.clone());
        Ok(format!("signed-{}", claims.jti))
    });
    recorder
}

#[tokio::test]
async fn login_issues_a_token_with_the_users_claims() {
    let mut h = Harness::new();
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|p, hash| p.expose() == "correct horse" && *hash == alice().password_hash)
        .returning(|_, _| Ok(true));
    let encoded = record_encodes(&mut h.tokens);
    let service = h.with_online(alice().id).build();

    let session = service
        .login("alice", "correct horse")
        .await
        .expect("logs in");

    let claims = encoded.calls();
    let [claims] = claims.as_slice() else {
        panic!("expected one token, got {claims:?}");
    };
    let lifetime = AuthPolicy::default().token_lifetime;
    assert_eq!(claims.sub, alice().id.to_string());
    assert_eq!(claims.user_id, alice().id);
    assert_eq!(claims.username, alice().username);
    assert_eq!(claims.iat, now().unix_timestamp());
    assert_eq!(claims.exp, (now() + lifetime).unix_timestamp());
    assert_ne!(claims.jti.as_uuid(), Uuid::nil());
    assert_eq!(session.token, format!("signed-{}", claims.jti));
    assert_eq!(session.expires_at, claims.exp);
    assert_eq!(session.user, alice().to_user(true));
}

#[tokio::test]
async fn login_finds_the_user_whatever_the_case() {
    let mut h = Harness::new();
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|_, hash| *hash == alice().password_hash)
        .returning(|_, _| Ok(true));
    let encoded = record_encodes(&mut h.tokens);

    let session = h
        .build()
        .login("ALICE", "correct horse")
        .await
        .expect("logs in");

    assert_eq!(session.user.username.as_str(), "alice");
    assert_eq!(encoded.calls().len(), 1);
}

#[tokio::test]
async fn login_of_an_unknown_user_still_verifies_against_the_decoy() {
    let mut h = Harness::new();
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|p, hash| p.expose() == "correct horse" && hash.as_str() == DECOY)
        .returning(|_, _| Ok(false));
    h.tokens.expect_encode().times(0);

    let err = h.build().login("nobody", "correct horse").await;

    assert_eq!(err, Err(DomainError::InvalidCredentials));
}

#[tokio::test]
async fn login_refuses_an_unknown_user_even_if_the_decoy_matched() {
    let mut h = Harness::new();
    h.hasher.expect_verify().times(1).returning(|_, _| Ok(true));
    h.tokens.expect_encode().times(0);

    let err = h.build().login("nobody", "correct horse").await;

    assert_eq!(err, Err(DomainError::InvalidCredentials));
}

#[tokio::test]
async fn login_with_a_wrong_password_is_invalid_credentials() {
    let mut h = Harness::new();
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|_, hash| *hash == alice().password_hash)
        .returning(|_, _| Ok(false));
    h.tokens.expect_encode().times(0);

    let err = h.build().login("alice", "wrong password").await;

    assert_eq!(err, Err(DomainError::InvalidCredentials));
}

#[tokio::test]
async fn login_with_a_malformed_username_still_does_the_hashing_work() {
    let mut h = Harness::new();
    h.users.expect_user_by_username().times(0);
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|_, hash| hash.as_str() == DECOY)
        .returning(|_, _| Ok(false));
    h.tokens.expect_encode().times(0);

    let err = h.build().login("a b", "correct horse").await;

    assert_eq!(err, Err(DomainError::InvalidCredentials));
}

#[tokio::test]
async fn login_with_a_malformed_password_still_does_the_hashing_work() {
    let mut h = Harness::new();
    h.hasher
        .expect_verify()
        .times(1)
        .withf(|_, hash| hash.as_str() == DECOY)
        .returning(|_, _| Ok(true));
    h.tokens.expect_encode().times(0);

    let err = h.build().login("alice", "short").await;

    assert_eq!(err, Err(DomainError::InvalidCredentials));
}

#[tokio::test]
async fn authenticate_returns_the_caller_of_a_valid_token() {
    let expires_at = now() + Duration::hours(1);
    let mut h = Harness::new();
    h.tokens
        .expect_decode()
        .times(1)
        .withf(|token| token == "good")
        .returning(move |_| Ok(claims(&alice(), expires_at)));
    h.revocations
        .expect_is_revoked()
        .times(1)
        .withf(|jti| *jti == claims(&alice(), now()).jti)
        .returning(|_| Ok(false));

    let caller = h.build().authenticate("good").await.expect("authenticates");

    assert_eq!(
        caller,
        Caller {
            user_id: alice().id,
            username: alice().username,
            token_id: claims(&alice(), expires_at).jti,
            expires_at,
        }
    );
}

/// Authenticates a token of alice's that expires at `expires_at`, which the
/// service must refuse without asking about revocation.
async fn authenticate_expiring_at(expires_at: time::OffsetDateTime) -> DomainResult<Caller> {
    let mut h = Harness::new();
    h.tokens
        .expect_decode()
        .times(1)
        .returning(move |_| Ok(claims(&alice(), expires_at)));
    h.revocations.expect_is_revoked().times(0);
    h.build().authenticate("old").await
}

#[tokio::test]
async fn a_token_expiring_right_now_is_unauthenticated() {
    let result = authenticate_expiring_at(now()).await;
    assert_eq!(result, Err(DomainError::Unauthenticated));
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let result = authenticate_expiring_at(now() - Duration::seconds(1)).await;
    assert_eq!(result, Err(DomainError::Unauthenticated));
}

/// Authenticates a valid token of alice's whose claims `edit` changed.
async fn authenticate_edited(edit: impl Fn(&mut Claims) + Send + 'static) -> DomainResult<Caller> {
    let mut h = Harness::new();
    h.tokens.expect_decode().times(1).returning(move |_| {
        let mut claims = claims(&alice(), now() + Duration::hours(1));
        edit(&mut claims);
        Ok(claims)
    });
    h.revocations.expect_is_revoked().returning(|_| Ok(false));
    h.build().authenticate("edited").await
}

#[tokio::test]
async fn a_token_issued_more_than_a_minute_in_the_future_is_refused() {
    let future = authenticate_edited(|c| c.iat = (now() + Duration::seconds(61)).unix_timestamp());
    assert_eq!(future.await, Err(DomainError::Unauthenticated));
    let skewed = authenticate_edited(|c| c.iat = (now() + Duration::seconds(60)).unix_timestamp());
    assert!(skewed.await.is_ok(), "a minute of clock skew is tolerated");
}

#[tokio::test]
async fn a_token_not_valid_until_more_than_a_minute_from_now_is_refused() {
    let future =
        authenticate_edited(|c| c.nbf = Some((now() + Duration::seconds(61)).unix_timestamp()));
    assert_eq!(future.await, Err(DomainError::Unauthenticated));
    let skewed =
        authenticate_edited(|c| c.nbf = Some((now() + Duration::seconds(60)).unix_timestamp()));
    assert!(skewed.await.is_ok(), "a minute of clock skew is tolerated");
    let past = authenticate_edited(|c| c.nbf = Some((now() - Duration::hours(1)).unix_timestamp()));
    assert!(past.await.is_ok());
}

#[tokio::test]
async fn a_token_for_an_unknown_account_is_an_invalid_token() {
    let mut h = Harness::new();
    h.tokens
        .expect_decode()
        .times(1)
        .returning(|_| Ok(claims(&stranger(), now() + Duration::hours(1))));
    h.revocations.expect_is_revoked().returning(|_| Ok(false));

    let result = h.build().authenticate("ghost").await;

    assert_eq!(result, Err(DomainError::InvalidToken));
}

#[tokio::test]
async fn a_token_whose_username_is_not_its_accounts_is_an_invalid_token() {
    // Alice's id with bob's name: what a token issued before a database
    // reset looks like once someone else registered under that name.
    let result = authenticate_edited(|c| c.username = bob().username).await;
    assert_eq!(result, Err(DomainError::InvalidToken));
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    let mut h = Harness::new();
    h.tokens
        .expect_decode()
        .times(1)
        .returning(|_| Ok(claims(&alice(), now() + Duration::hours(1))));
    h.revocations
        .expect_is_revoked()
        .times(1)
        .returning(|_| Ok(true));

    let result = h.build().authenticate("revoked").await;

    assert_eq!(result, Err(DomainError::TokenRevoked));
}

#[tokio::test]
async fn a_token_the_codec_rejects_is_unauthenticated() {
    let mut h = Harness::new();
    h.tokens
        .expect_decode()
        .times(1)
        .returning(|_| Err(DomainError::Unauthenticated));
    h.revocations.expect_is_revoked().times(0);

    let result = h.build().authenticate("forged").await;

    assert_eq!(result, Err(DomainError::Unauthenticated));
}

#[tokio::test]
async fn refresh_too_early_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    h.tokens.expect_encode().times(0);
    h.revocations.expect_revoke().times(0);
    let early = caller_expiring(&alice(), Duration::minutes(15) + Duration::seconds(1));

    let result = h.build().refresh(&early).await;

    assert_eq!(result, Err(DomainError::NotEligibleForRefresh));
}

/// Expects a refresh of `caller`: one new token, and the old one revoked
/// until it would have expired.
fn expect_refresh(h: &mut Harness, caller: &Caller) -> Recorder<Claims> {
    let encoded = record_encodes(&mut h.tokens);
    let (jti, expires_at) = (caller.token_id, caller.expires_at);
    h.revocations
        .expect_revoke()
        .times(1)
        .withf(move |token, until| *token == jti && *until == expires_at)
        .returning(|_, _| Ok(()));
    encoded
}

#[tokio::test]
async fn refresh_within_the_window_issues_a_new_token_and_revokes_the_old() {
    let mut h = Harness::new();
    let late = caller_expiring(&alice(), Duration::minutes(5));
    let encoded = expect_refresh(&mut h, &late);

    let session = h.build().refresh(&late).await.expect("refreshes");

    let claims = encoded.calls();
    let [claims] = claims.as_slice() else {
        panic!("expected one new token, got {claims:?}");
    };
    assert_ne!(claims.jti, late.token_id);
    assert_eq!(claims.user_id, alice().id);
    let lifetime = AuthPolicy::default().token_lifetime;
    assert_eq!(session.expires_at, (now() + lifetime).unix_timestamp());
    assert_eq!(session.token, format!("signed-{}", claims.jti));
    assert_eq!(session.user, alice().to_user(false));
}

#[tokio::test]
async fn refresh_exactly_15_minutes_before_expiry_is_allowed() {
    let mut h = Harness::new();
    let boundary = caller_expiring(&alice(), Duration::minutes(15));
    let encoded = expect_refresh(&mut h, &boundary);

    h.build()
        .refresh(&boundary)
        .await
        .expect("the window's edge is inside it");

    assert_eq!(encoded.calls().len(), 1);
}

#[tokio::test]
async fn logout_revokes_the_token_until_it_expires() {
    let mut h = Harness::new();
    let me = caller(&alice());
    let (jti, expires_at) = (me.token_id, me.expires_at);
    h.revocations
        .expect_revoke()
        .times(1)
        .withf(move |token, until| *token == jti && *until == expires_at)
        .returning(|_, _| Ok(()));
    let user = me.user_id;
    h.notifier
        .expect_revoke()
        .times(1)
        .withf(move |u, token| *u == user && *token == jti)
        .return_const(());

    h.build().logout(&me).await.expect("logs out");
}

#[tokio::test]
async fn a_logout_that_fails_to_store_closes_nothing() {
    let mut h = Harness::new();
    h.revocations
        .expect_revoke()
        .returning(|_, _| Err(DomainError::StoreUnavailable));
    h.notifier.expect_revoke().times(0);

    let result = h.build().logout(&caller(&alice())).await;

    assert_eq!(result, Err(DomainError::StoreUnavailable));
}

#[tokio::test]
async fn a_user_is_online_when_the_notifier_says_so() {
    let service = Harness::new().with_online(bob().id).build();

    let me = caller(&bob());
    assert_eq!(service.user(&me, bob().id).await, Ok(bob().to_user(true)));
    assert_eq!(
        service.user(&me, carol().id).await.map(|u| u.is_online),
        Ok(false)
    );
    assert_eq!(
        service.user(&me, stranger().id).await,
        Err(DomainError::UserNotFound)
    );
}

#[tokio::test]
async fn only_the_users_own_email_is_shown() {
    let service = Harness::new().build();
    let me = caller(&alice());

    let own = service.user(&me, alice().id).await.expect("alice");
    assert_eq!(own.email, Some(alice().email));
    let other = service.user(&me, bob().id).await.expect("bob");
    assert_eq!(other.email, None);
    assert_eq!(other.username, bob().username);
    let profile = service.profile(&me).await.expect("profile");
    assert_eq!(profile.email, Some(alice().email));
}

/// A connection that never receives anything.
struct Silent;

#[async_trait::async_trait]
impl crate::ports::Subscription for Silent {
    async fn next(&mut self) -> Option<crate::ports::Delivery> {
        std::future::pending().await
    }

    fn presence(&self) -> Arc<dyn crate::ports::PresenceFollows> {
        unreachable!("not asked in these tests")
    }
}

fn expect_connect(h: &mut Harness, me: &Caller) {
    let (user, token) = (me.user_id, me.token_id);
    h.notifier
        .expect_connect()
        .times(1)
        .withf(move |u, _, t| *u == user && *t == token)
        .returning(|_, _, _| Ok(Box::new(Silent)));
}

#[tokio::test]
async fn a_connection_is_registered_with_its_token() {
    let mut h = Harness::new();
    let me = caller(&alice());
    expect_connect(&mut h, &me);
    h.revocations.expect_is_revoked().returning(|_| Ok(false));

    assert!(h.build().open_connection(&me).await.is_ok());
}

#[tokio::test]
async fn a_connection_whose_token_was_revoked_while_it_opened_is_refused() {
    let mut h = Harness::new();
    let me = caller(&alice());
    expect_connect(&mut h, &me);
    let jti = me.token_id;
    h.revocations
        .expect_is_revoked()
        .withf(move |token| *token == jti)
        .returning(|_| Ok(true));

    let result = h.build().open_connection(&me).await;

    assert!(matches!(result, Err(DomainError::TokenRevoked)));
}
