//! The WebSocket endpoint end to end: the real server on a random loopback
//! port, real WebSocket clients (tokio-tungstenite). Each test runs once
//! per backend (see `support::backend_tests!` and `per_backend!`).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod delivery;
mod frames;
mod handshake;
mod limits;
mod presence;
mod shutdown;
mod slow_reader;
