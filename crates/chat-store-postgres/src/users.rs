//! [`UserStore`] on the `users` table.

use async_trait::async_trait;
use chat_domain::{
    DomainError, DomainResult, Page, PageRequest, UserAccount, UserId, UserStore, Username,
};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::{db_error, unique_violation};
use crate::paging::paged;
use crate::rows::UserRow;
use crate::schema::users;
use crate::sql::lower;
use crate::store::PgStore;

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, account: &UserAccount) -> DomainResult<()> {
        self.within(async {
            let mut conn = self.conn().await?;
            diesel::insert_into(users::table)
                .values(UserRow::from(account))
                .execute(&mut conn)
                .await
                .map_err(registration_error)?;
            self.accounts().put(account);
            Ok(())
        })
        .await
    }

    /// Read once per id and instance for a while: every request checks
    /// its caller's account (see `account_cache.rs`).
    async fn user_by_id(&self, id: UserId) -> DomainResult<Option<UserAccount>> {
        self.within(async {
            if let Some(account) = self.accounts().get_by_id(id) {
                return Ok(Some(account));
            }
            let mut conn = self.conn().await?;
            let row = users::table
                .find(id.as_uuid())
                .select(UserRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?;
            self.remember(row)
        })
        .await
    }

    /// Read once per name and instance for a while: accounts never change
    /// (see `account_cache.rs`).
    async fn user_by_username(&self, username: &Username) -> DomainResult<Option<UserAccount>> {
        self.within(async {
            // Usernames are ASCII, so Rust's and PostgreSQL's lower() agree; the
            // comparison is on lower(username), the unique index's expression.
            let folded = username.as_str().to_ascii_lowercase();
            if let Some(account) = self.accounts().get(&folded) {
                return Ok(Some(account));
            }
            let mut conn = self.conn().await?;
            let row = users::table
                .filter(lower(users::username).eq(folded))
                .select(UserRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db_error)?;
            self.remember(row)
        })
        .await
    }

    async fn list_users(&self, page: PageRequest<UserId>) -> DomainResult<Page<UserAccount>> {
        self.within(async {
            let mut conn = self.conn().await?;
            let query = users::table.select(UserRow::as_select()).into_boxed();
            let rows: Vec<UserRow> = paged!(query, users::id, &page, |id: UserId| id.as_uuid())
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            let accounts = rows
                .into_iter()
                .map(UserAccount::try_from)
                .collect::<DomainResult<Vec<_>>>()?;
            Ok(Page::from_probe(accounts, &page))
        })
        .await
    }
}

impl PgStore {
    /// The account of a row read by id or name, kept in the account cache.
    fn remember(&self, row: Option<UserRow>) -> DomainResult<Option<UserAccount>> {
        let account = row.map(UserAccount::try_from).transpose()?;
        if let Some(account) = &account {
            self.accounts().put(account);
        }
        Ok(account)
    }
}

/// A registration that lost a race (or repeated a name) hits a unique index:
/// that is a 409, not a 500.
fn registration_error(err: diesel::result::Error) -> DomainError {
    match unique_violation(&err) {
        Some("users_username_lower_key") => DomainError::UsernameTaken,
        Some("users_email_lower_key") => DomainError::EmailTaken,
        _ => db_error(err),
    }
}
