//! The HTTP API end to end: the real server on a random loopback port, a
//! real HTTP client. Each test body runs once per backend (see
//! `support::backend_tests!`).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod auth;
mod cli;
mod conversations;
mod database_tls;
mod hardening;
mod logs;
mod messages;
mod openapi;
mod outage;
mod rooms;
mod system;
mod users;
mod web;
