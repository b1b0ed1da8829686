//! Two `chat-server` processes sharing one PostgreSQL database and one
//! Redis, on loopback: clients on different instances chat exactly as on
//! one (global, direct, room, typing, presence, `/api/ws/users`), a killed
//! instance's users go offline within the expiry bound (a stopped one's at
//! once), membership changes route across instances, a client that
//! reconnects to one instance catches up on the changes made through the
//! other, and the same through
//! a real nginx running the repository's `docker/nginx.conf`.
//!
//! Needs PostgreSQL (`TEST_DATABASE_URL`), Redis (`TEST_REDIS_URL`) and
//! nginx (`NGINX_BIN` or on PATH); `scripts/test.sh` provides all three.
//! Run alone with `cargo test -p chat-server --test cluster`.

#[allow(unused_macros)]
#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod blip;
mod changes;
mod delivery;
#[path = "../metrics/exposition.rs"]
mod exposition;
mod harness;
mod health;
mod membership;
mod metrics;
mod nginx;
mod presence;
mod reads;
