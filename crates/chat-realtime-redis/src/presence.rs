//! Cluster-wide presence in Redis, as Lua scripts: each runs atomically,
//! so "is this user connected anywhere else?" and the announcement it
//! leads to are one step, whatever the other instances do meanwhile.
//!
//! Keys, under the configured prefix `P` (a standalone Redis or one
//! primary: the scripts touch keys they compute, which Redis Cluster
//! forbids):
//! - `P:instances`: sorted set of live instance ids, scored by the Redis
//!   time (ms) at which each instance's registration lapses unless it is
//!   refreshed;
//! - `P:presence:<instance>`: hash `user id -> username` of the users with
//!   at least one connection to that instance;
//! - `P:events`: the channel every envelope is published on.
//!
//! Every writing script first refreshes its own instance (when still
//! registered) and then reaps: lapsed instances are removed with their
//! hash, and each of their users not registered by a live instance is
//! announced `offline`. Only one script can remove a given instance, so
//! one instance announces its users. Times come from Redis's clock
//! (`TIME`), so the instances' clocks do not matter. Both keys also get a
//! Redis expiry of four registration lifetimes, refreshed with the
//! registration, so that a cluster that stops entirely leaves nothing
//! behind.

use std::collections::HashMap;

use chat_domain::{PresenceStatus, UserId, Username};
use chat_realtime::PresenceChange;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script, ScriptInvocation};

/// Shared by every script. `ARGV[1]` prefix, `ARGV[2]` this instance,
/// `ARGV[3]` registration lifetime (ms); script arguments follow.
const PRELUDE: &str = r##"
local prefix, me, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local instances = prefix .. ':instances'
local channel = prefix .. ':events'
local function users_key(id) return prefix .. ':presence:' .. id end
local function ms(n) return string.format('%.0f', n) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function registered() return redis.call('ZSCORE', instances, me) ~= false end

-- (Re)registers this instance until now + ttl.
local function refresh()
  redis.call('ZADD', instances, ms(now + ttl), me)
  redis.call('PEXPIRE', instances, ms(ttl * 4))
end

local function keep_users() redis.call('PEXPIRE', users_key(me), ms(ttl * 4)) end

-- A presence change, in an envelope that every instance reads (origin "*"),
-- the sender included; each tells the connections that follow the user.
local function announce(name, status)
  redis.call('PUBLISH', channel, '* *\n{"type":"presence","username":'
    .. cjson.encode(name) .. ',"status":"' .. status .. '"}')
end

-- Whether a registered instance other than `except` has `user`.
local function elsewhere(user, except)
  for _, id in ipairs(redis.call('ZRANGE', instances, 0, -1)) do
    if id ~= except and redis.call('HEXISTS', users_key(id), user) == 1 then
      return true
    end
  end
  return false
end

local function hash_table(key)
  local flat, out = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

-- Removes lapsed instances; their users not on a live instance go offline.
local function reap()
  local dead = redis.call('ZRANGEBYSCORE', instances, '-inf', '(' .. ms(now))
  if #dead == 0 then return end
  local gone = {}
  for _, id in ipairs(dead) do
    redis.call('ZREM', instances, id)
    for user, name in pairs(hash_table(users_key(id))) do gone[user] = name end
    redis.call('DEL', users_key(id))
  end
  for user, name in pairs(gone) do
    if not elsewhere(user, nil) then announce(name, 'offline') end
  end
end

-- Instances whose registration has not lapsed (for read-only scripts).
local function live() return redis.call('ZRANGEBYSCORE', instances, ms(now), '+inf') end
"##;

/// A local presence change. `ARGV[4]` `online`/`offline`, `ARGV[5]` user
/// id, `ARGV[6]` username. Returns -1 when this instance is no longer
/// registered (it must register again), 1 when the change was announced,
/// 0 when the user is connected through another instance too.
const CHANGE: &str = r##"
if not registered() then return -1 end
refresh()
reap()
local status, user, name = ARGV[4], ARGV[5], ARGV[6]
if status == 'online' then
  redis.call('HSET', users_key(me), user, name)
else
  redis.call('HDEL', users_key(me), user)
end
keep_users()
if elsewhere(user, me) then return 0 end
announce(name, status)
return 1
"##;

/// Replaces this instance's registration with its full list of users
/// (`ARGV[4..]`: user id, username, ...), announcing the differences with
/// what Redis held (nothing, if the instance had been reaped).
const REGISTER: &str = r##"
refresh()
reap()
local key = users_key(me)
local old, new = hash_table(key), {}
redis.call('DEL', key)
for i = 4, #ARGV, 2 do
  new[ARGV[i]] = ARGV[i + 1]
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
keep_users()
for user, name in pairs(new) do
  if old[user] == nil and not elsewhere(user, me) then announce(name, 'online') end
end
for user, name in pairs(old) do
  if new[user] == nil and not elsewhere(user, me) then announce(name, 'offline') end
end
return 1
"##;

/// The heartbeat. Returns 0 when this instance is no longer registered.
const BEAT: &str = r##"
if not registered() then return 0 end
refresh()
reap()
keep_users()
return 1
"##;

/// Leaves the cluster: its users not connected elsewhere go offline.
const DEREGISTER: &str = r##"
redis.call('ZREM', instances, me)
local users = hash_table(users_key(me))
redis.call('DEL', users_key(me))
reap()
for user, name in pairs(users) do
  if not elsewhere(user, nil) then announce(name, 'offline') end
end
return 1
"##;

/// Usernames with a connection to a live instance, each once.
const USERNAMES: &str = r##"
local seen, out = {}, {}
for _, id in ipairs(live()) do
  for user, name in pairs(hash_table(users_key(id))) do
    if not seen[user] then seen[user] = true; out[#out + 1] = name end
  end
end
return out
"##;

/// Which of the user ids in `ARGV[4..]` have a connection to a live
/// instance.
const ONLINE_AMONG: &str = r##"
local instances_now, out = live(), {}
for i = 4, #ARGV do
  for _, id in ipairs(instances_now) do
    if redis.call('HEXISTS', users_key(id), ARGV[i]) == 1 then
      out[#out + 1] = ARGV[i]
      break
    end
  end
end
return out
"##;

/// What a local presence change did in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeOutcome {
    /// Announced to every instance.
    Announced,
    /// Not announced: the user is connected through another instance.
    Quiet,
    /// This instance was reaped (it missed its heartbeats): it must
    /// register again.
    Lost,
}

/// This instance's presence registration and the cluster's presence.
pub(crate) struct Presence {
    prefix: String,
    instance: String,
    ttl_ms: u64,
    change: Script,
    register: Script,
    beat: Script,
    deregister: Script,
    usernames: Script,
    online_among: Script,
}

impl Presence {
    pub(crate) fn new(prefix: &str, instance: &str, ttl_ms: u64) -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
            ttl_ms,
            change: script(CHANGE),
            register: script(REGISTER),
            beat: script(BEAT),
            deregister: script(DEREGISTER),
            usernames: script(USERNAMES),
            online_among: script(ONLINE_AMONG),
        }
    }

    /// An invocation with the arguments every script takes.
    fn call<'a>(&'a self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(&self.instance)
            .arg(self.ttl_ms);
        invocation
    }

    pub(crate) async fn change(
        &self,
        conn: &mut MultiplexedConnection,
        change: &PresenceChange,
    ) -> RedisResult<ChangeOutcome> {
        let status = match change.status {
            PresenceStatus::Online => "online",
            // A hub reports only a user's first connection and last.
            PresenceStatus::Offline | PresenceStatus::Unknown => "offline",
        };
        let mut call = self.call(&self.change);
        call.arg(status)
            .arg(change.user.to_string())
            .arg(change.username.as_str());
        let outcome: i64 = call.invoke_async(conn).await?;
        Ok(match outcome {
            -1 => ChangeOutcome::Lost,
            0 => ChangeOutcome::Quiet,
            _ => ChangeOutcome::Announced,
        })
    }

    pub(crate) async fn register(
        &self,
        conn: &mut MultiplexedConnection,
        users: &HashMap<UserId, Username>,
    ) -> RedisResult<()> {
        let mut call = self.call(&self.register);
        for (id, name) in users {
            call.arg(id.to_string()).arg(name.as_str());
        }
        call.invoke_async(conn).await
    }

    /// `false` when this instance was reaped and must register again.
    pub(crate) async fn beat(&self, conn: &mut MultiplexedConnection) -> RedisResult<bool> {
        let alive: i64 = self.call(&self.beat).invoke_async(conn).await?;
        Ok(alive == 1)
    }

    pub(crate) async fn deregister(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        self.call(&self.deregister).invoke_async(conn).await
    }

    /// Usernames connected anywhere in the cluster, unsorted, as Redis
    /// holds them (the caller validates them).
    pub(crate) async fn usernames(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> RedisResult<Vec<String>> {
        self.call(&self.usernames).invoke_async(conn).await
    }

    /// Which of `users` are connected anywhere, as Redis holds their ids.
    pub(crate) async fn online_among(
        &self,
        conn: &mut MultiplexedConnection,
        users: &[UserId],
    ) -> RedisResult<Vec<String>> {
        let mut call = self.call(&self.online_among);
        for user in users {
            call.arg(user.to_string());
        }
        call.invoke_async(conn).await
    }
}
