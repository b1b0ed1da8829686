//! [`RevocationStore`] and [`StoreHealth`].

use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{DomainError, DomainResult, RevocationStore, StoreHealth, TokenId};
use diesel::dsl::{exists, select};
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use time::OffsetDateTime;

use crate::error::db_error;
use crate::schema::revoked_tokens;
use crate::store::PgStore;

/// How long `/health` waits for the database before calling it down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait]
impl RevocationStore for PgStore {
    async fn revoke(&self, token: TokenId, expires_at: OffsetDateTime) -> DomainResult<()> {
        self.within(async {
            let mut conn = self.conn().await?;
            // Revoking twice keeps the later expiry, so the token stays revoked
            // for as long as it could be used.
            diesel::insert_into(revoked_tokens::table)
                .values((
                    revoked_tokens::jti.eq(token.as_uuid()),
                    revoked_tokens::expires_at.eq(expires_at),
                ))
                .on_conflict(revoked_tokens::jti)
                .do_update()
                .set(revoked_tokens::expires_at.eq(crate::sql::greatest_time(
                    revoked_tokens::expires_at,
                    diesel::upsert::excluded(revoked_tokens::expires_at),
                )))
                .execute(&mut conn)
                .await
                .map(drop)
                .map_err(db_error)
        })
        .await
    }

    async fn is_revoked(&self, token: TokenId) -> DomainResult<bool> {
        self.within(async {
            let mut conn = self.conn().await?;
            select(exists(revoked_tokens::table.find(token.as_uuid())))
                .get_result(&mut conn)
                .await
                .map_err(db_error)
        })
        .await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> DomainResult<u64> {
        self.within(async {
            let mut conn = self.conn().await?;
            let purged =
                diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
            Ok(u64::try_from(purged).unwrap_or(u64::MAX))
        })
        .await
    }
}

#[async_trait]
impl StoreHealth for PgStore {
    /// `SELECT 1` on a pooled connection, within two seconds.
    async fn check(&self) -> DomainResult<()> {
        let probe = async {
            let mut conn = self.conn().await?;
            select(1.into_sql::<Integer>())
                .get_result::<i32>(&mut conn)
                .await
                .map_err(db_error)
        };
        match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            // Whatever failed, the store cannot serve requests right now.
            Ok(Err(_)) | Err(_) => Err(DomainError::StoreUnavailable),
        }
    }
}
