//! Registration, login, tokens and user look-ups.

use std::collections::HashSet;

use crate::auth::{Caller, Claims, Session};
use crate::entities::{User, UserAccount};
use crate::error::{DomainError, DomainResult};
use crate::ids::{TokenId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::ports::Subscription;
use crate::values::{Email, Password, Username};

use super::ChatService;

/// How far in the future a token's `iat` or `nbf` may lie: the clocks of
/// two instances (one issuing, one checking) may disagree by this much.
pub(crate) const CLOCK_SKEW: time::Duration = time::Duration::seconds(60);

impl ChatService {
    /// Registers a user. The password is hashed off the async executor by
    /// the hasher; the store enforces unique username and email.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> DomainResult<User> {
        let username = Username::parse(username)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let account = UserAccount {
            id: UserId::generate(),
            username,
            email,
            password_hash: self.hasher.hash(&password).await?,
            created_at: self.clock.now(),
        };
        self.stores.users.create_user(&account).await?;
        Ok(account.to_user(false))
    }

    /// Checks a username and password and issues a token. An unknown user
    /// and a wrong password fail the same way, after the same hashing work.
    pub async fn login(&self, username: &str, password: &str) -> DomainResult<Session> {
        // Malformed input cannot match an account; still do the hashing
        // work so the answer takes as long as any other failure.
        let password = Password::parse(password).ok();
        let username = Username::parse(username).ok();
        let account = match &username {
            Some(name) => self.stores.users.user_by_username(name).await?,
            None => None,
        };
        let decoy = self.hasher.decoy_hash();
        let hash = account.as_ref().map_or(&decoy, |a| &a.password_hash);
        let matches = match &password {
            Some(p) => self.hasher.verify(p, hash).await?,
            None => {
                let filler = Password::parse("decoy-password").map_err(DomainError::internal)?;
                self.hasher.verify(&filler, &decoy).await?;
                false
            }
        };
        match account {
            Some(account) if matches => self.issue_session(&account).await,
            _ => Err(DomainError::InvalidCredentials),
        }
    }

    /// Turns a presented token into the caller's identity: the signature
    /// must check, the token must not be expired or revoked, nor issued or
    /// valid from more than `CLOCK_SKEW` in the future, and its account
    /// must exist with the id and username it names (`InvalidToken`).
    /// Stores answer that look-up from a cache where it costs a round trip
    /// (see `UserStore::user_by_id`).
    pub async fn authenticate(&self, token: &str) -> DomainResult<Caller> {
        let claims = self.tokens.decode(token)?;
        let now = self.clock.now();
        let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
            .map_err(|_| DomainError::Unauthenticated)?;
        if expires_at <= now {
            return Err(DomainError::Unauthenticated);
        }
        // A token from the future was not issued by a server with a sane
        // clock: refused, with some room for clocks of instances that
        // disagree a little.
        let latest = (now + CLOCK_SKEW).unix_timestamp();
        if claims.iat > latest || claims.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(DomainError::Unauthenticated);
        }
        if self.stores.revocations.is_revoked(claims.jti).await? {
            return Err(DomainError::TokenRevoked);
        }
        // The signature only proves that some server with this secret
        // issued the token, maybe before the database was reset: the
        // account must still be there, under the same name.
        match self.stores.users.user_by_id(claims.user_id).await? {
            Some(account) if account.username == claims.username => {}
            _ => return Err(DomainError::InvalidToken),
        }
        Ok(Caller {
            user_id: claims.user_id,
            username: claims.username,
            token_id: claims.jti,
            expires_at,
        })
    }

    /// Issues a new token to a caller whose token expires within the refresh
    /// window, and revokes the old one so only one of the two stays usable.
    pub async fn refresh(&self, caller: &Caller) -> DomainResult<Session> {
        if caller.expires_at - self.clock.now() > self.policy.refresh_window {
            return Err(DomainError::NotEligibleForRefresh);
        }
        let account = self.account(caller.user_id).await?;
        let session = self.issue_session(&account).await?;
        self.stores
            .revocations
            .revoke(caller.token_id, caller.expires_at)
            .await?;
        Ok(session)
    }

    /// Revokes the caller's token until it would have expired, and closes
    /// the connections opened with it, on every instance.
    pub async fn logout(&self, caller: &Caller) -> DomainResult<()> {
        self.stores
            .revocations
            .revoke(caller.token_id, caller.expires_at)
            .await?;
        self.notifier.revoke(caller.user_id, caller.token_id).await;
        Ok(())
    }

    /// Registers a live connection of the caller with the notifier. The
    /// token is checked again once the connection is registered: a logout
    /// that came between the caller's authentication and now closed the
    /// connections it could see, not this one.
    pub async fn open_connection(&self, caller: &Caller) -> DomainResult<Box<dyn Subscription>> {
        let subscription = self
            .notifier
            .connect(caller.user_id, caller.username.clone(), caller.token_id)
            .await?;
        if self.stores.revocations.is_revoked(caller.token_id).await? {
            return Err(DomainError::TokenRevoked);
        }
        Ok(subscription)
    }

    /// The caller's own profile.
    pub async fn profile(&self, caller: &Caller) -> DomainResult<User> {
        self.user(caller, caller.user_id).await
    }

    /// One user by id, as the caller sees them (the email only if it is
    /// the caller's own).
    pub async fn user(&self, caller: &Caller, id: UserId) -> DomainResult<User> {
        let account = self.account(id).await?;
        let online = self.notifier.online_among(&[id]).await?;
        Ok(account.to_user_seen_by(caller.user_id, online.contains(&id)))
    }

    /// Users in registration order, as the caller sees them (only the
    /// caller's own entry carries an email).
    pub async fn users(
        &self,
        caller: &Caller,
        page: PageRequest<UserId>,
    ) -> DomainResult<Page<User>> {
        let accounts = self.stores.users.list_users(page).await?;
        let ids: Vec<UserId> = accounts.items.iter().map(|a| a.id).collect();
        let online: HashSet<UserId> = self.notifier.online_among(&ids).await?;
        Ok(accounts.map(|a| a.to_user_seen_by(caller.user_id, online.contains(&a.id))))
    }

    /// Usernames connected anywhere, sorted.
    pub async fn connected_users(&self) -> DomainResult<Vec<Username>> {
        self.notifier.connected_users().await
    }

    /// Forgets revocations of tokens that have expired (housekeeping).
    pub async fn purge_expired_revocations(&self) -> DomainResult<u64> {
        self.stores
            .revocations
            .purge_expired(self.clock.now())
            .await
    }

    pub(super) async fn account(&self, id: UserId) -> DomainResult<UserAccount> {
        self.stores
            .users
            .user_by_id(id)
            .await?
            .ok_or(DomainError::UserNotFound)
    }

    pub(super) async fn account_named(&self, username: &str) -> DomainResult<UserAccount> {
        let username = Username::parse(username).map_err(|_| DomainError::UserNotFound)?;
        self.stores
            .users
            .user_by_username(&username)
            .await?
            .ok_or(DomainError::UserNotFound)
    }

    async fn issue_session(&self, account: &UserAccount) -> DomainResult<Session> {
        let now = self.clock.now();
        let expires_at = now + self.policy.token_lifetime;
        let claims = Claims {
            sub: account.id.to_string(),
            user_id: account.id,
            username: account.username.clone(),
            iat: now.unix_timestamp(),
            nbf: None,
            exp: expires_at.unix_timestamp(),
            jti: TokenId::generate(),
        };
        let token = self.tokens.encode(&claims)?;
        let online = self.notifier.online_among(&[account.id]).await?;
        Ok(Session {
            token,
            user: account.to_user(online.contains(&account.id)),
            expires_at: claims.exp,
        })
    }
}
