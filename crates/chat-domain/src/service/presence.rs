//! Presence subscriptions: a connection follows the users it names, and
//! learns their status at once, then only their changes.

use std::collections::{HashMap, HashSet};

use crate::error::DomainResult;
use crate::ids::UserId;
use crate::ports::{PresenceFollows, PresenceStatus, UserPresence};
use crate::values::Username;

use super::ChatService;

/// A name a connection asked to follow, resolved.
enum Named {
    Known(UserId, Username),
    Unknown(String),
}

impl ChatService {
    /// Makes `follows` follow the users named (at most `limit` in all, or
    /// `TooManySubscriptions` and nothing changes), and hands it the
    /// current status of each, each name once, as its next presence (see
    /// [`PresenceFollows::seed`]). A name no user has is `Unknown`, and is
    /// not followed. Following happens before the statuses are read, so a
    /// change in between is not missed, and a change that comes while they
    /// are read wins over what was read.
    pub async fn follow_presence(
        &self,
        follows: &dyn PresenceFollows,
        names: &[String],
        limit: usize,
    ) -> DomainResult<()> {
        let mut resolved = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            if seen.insert(name.to_ascii_lowercase()) {
                resolved.push(self.resolve(name).await?);
            }
        }
        let known: Vec<Username> = resolved
            .iter()
            .filter_map(|named| match named {
                Named::Known(_, username) => Some(username.clone()),
                Named::Unknown(_) => None,
            })
            .collect();
        follows.follow(&known, limit)?;
        let ids: Vec<UserId> = resolved
            .iter()
            .filter_map(|named| match named {
                Named::Known(id, _) => Some(*id),
                Named::Unknown(_) => None,
            })
            .collect();
        let online = self.notifier.online_among(&ids).await?;
        let statuses = resolved
            .into_iter()
            .map(|named| match named {
                Named::Known(id, username) => UserPresence {
                    username: username.into_inner(),
                    status: if online.contains(&id) {
                        PresenceStatus::Online
                    } else {
                        PresenceStatus::Offline
                    },
                },
                Named::Unknown(username) => UserPresence {
                    username,
                    status: PresenceStatus::Unknown,
                },
            })
            .collect();
        follows.seed(statuses);
        Ok(())
    }

    /// Makes `follows` stop following the users named; names it does not
    /// follow, or that are no username, are ignored.
    pub fn unfollow_presence(&self, follows: &dyn PresenceFollows, names: &[String]) {
        let users: HashMap<String, Username> = names
            .iter()
            .filter_map(|name| Username::parse(name.as_str()).ok())
            .map(|name| (name.as_str().to_ascii_lowercase(), name))
            .collect();
        let users: Vec<Username> = users.into_values().collect();
        follows.unfollow(&users);
    }

    async fn resolve(&self, name: &str) -> DomainResult<Named> {
        let Ok(username) = Username::parse(name) else {
            return Ok(Named::Unknown(name.to_owned()));
        };
        Ok(match self.stores.users.user_by_username(&username).await? {
            Some(account) => Named::Known(account.id, account.username),
            None => Named::Unknown(name.to_owned()),
        })
    }
}
