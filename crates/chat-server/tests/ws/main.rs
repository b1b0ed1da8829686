//! The WebSocket endpoint end to end: the real server on a random loopback
//! port, real WebSocket clients (tokio-tungstenite). Each test runs once
//! per backend (see `support::backend_tests!` and `per_backend!`).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod busy_sender;
mod changes;
mod delivery;
mod frames;
mod handshake;
mod hostile;
mod limits;
mod per_user;
mod pipelined;
mod presence;
mod reads;
mod recovery;
mod shutdown;
mod slow_reader;
mod upgraded;
