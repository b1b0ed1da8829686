//! `RevocationStore`: revoked tokens until they are purged.

use super::*;

/// Revoked tokens stay revoked until purged after their expiry; purging
/// counts what it forgot and leaves unexpired ones.
pub async fn revoked_tokens_are_remembered_until_purged<S: FullStore>(store: Arc<S>) {
    let t = now();
    let (live, expired, never) = (
        TokenId::generate(),
        TokenId::generate(),
        TokenId::generate(),
    );
    store
        .revoke(live, t + Duration::hours(1))
        .await
        .expect("revokes");
    store
        .revoke(expired, t - Duration::hours(1))
        .await
        .expect("revokes");
    assert!(store.is_revoked(live).await.expect("reads"));
    assert!(store.is_revoked(expired).await.expect("reads"));
    assert!(!store.is_revoked(never).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 1);
    assert!(store.is_revoked(live).await.expect("reads"));
    assert!(!store.is_revoked(expired).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 0);
    assert_eq!(
        store
            .purge_expired(t + Duration::hours(2))
            .await
            .expect("purges"),
        1
    );
    assert!(!store.is_revoked(live).await.expect("reads"));
}

/// Revoking a token twice is fine; it stays revoked.
pub async fn revoking_twice_is_harmless<S: FullStore>(store: Arc<S>) {
    let t = now();
    let token = TokenId::generate();
    store
        .revoke(token, t + Duration::hours(1))
        .await
        .expect("revokes");
    store
        .revoke(token, t + Duration::hours(1))
        .await
        .expect("revokes again");
    assert!(store.is_revoked(token).await.expect("reads"));
    assert_eq!(store.purge_expired(t).await.expect("purges"), 0);
}
