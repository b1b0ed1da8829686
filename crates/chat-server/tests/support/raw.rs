//! The raw WebSocket client of `chat_test_support::raw_ws`, on a test
//! server.

pub use chat_test_support::raw_ws::*;

use super::{TestApp, TestUser};

impl TestApp {
    /// A WebSocket upgrade request for `path`, with these extra header
    /// lines (each ending in `\r\n`).
    pub fn raw_upgrade_request(&self, path: &str, extra: &str) -> String {
        upgrade_request(self.addr, path, extra)
    }

    /// A WebSocket opened as `user` on a bare TCP stream whose send buffer
    /// is `send_buffer` bytes, with the server's `connection` frame read.
    pub async fn raw_ws(&self, user: &TestUser, send_buffer: u32) -> RawWs {
        RawWs::open(self.addr, &user.token, send_buffer).await
    }
}
