//! The WebSocket client-frame decoder: any text a client sends is either a
//! frame or an error the connection can answer with, never a panic.
//!
//! Beyond "no panic", it checks what the session relies on:
//! - an error has one of the two documented codes, keeps the frame's
//!   `client_id` when the frame had a string one, and its `error` frame is
//!   one JSON object (browsers `JSON.parse` every frame);
//! - parsing is deterministic;
//! - the fields of a `message` frame go through the same value constructors
//!   as the send use case without panicking.

#![no_main]

use chat_domain::{ClientId, MessageContent, Username};
use chat_protocol::{ClientFrame, FrameError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 by protocol: the transport rejects
    // anything else before the decoder sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ClientFrame::parse(text);
    assert_eq!(parsed, ClientFrame::parse(text), "parse is deterministic");
    match parsed {
        Ok(frame) => check_frame(frame),
        Err(error) => check_error(text, &error),
    }
});

fn check_frame(frame: ClientFrame) {
    if let ClientFrame::Message {
        content,
        recipient,
        client_id,
        ..
    } = frame
    {
        if let Ok(content) = MessageContent::parse(&content) {
            assert_eq!(content.as_str(), content.as_str().trim());
        }
        if let Some(recipient) = recipient {
            let _ = Username::parse(recipient);
        }
        if let Some(client_id) = client_id {
            let _ = ClientId::parse(client_id);
        }
    }
}

fn check_error(text: &str, error: &FrameError) {
    assert!(
        matches!(error.code, "invalid_frame" | "unknown_type"),
        "undocumented code {:?}",
        error.code
    );
    assert!(!error.error.is_empty(), "an error says why");
    if let Some(client_id) = &error.client_id {
        // Only a string `client_id` of a JSON object is echoed back.
        let value: serde_json::Value =
            serde_json::from_str(text).expect("a frame with a client_id is JSON");
        assert_eq!(value["client_id"].as_str(), Some(client_id.as_str()));
    }
    let json = error.to_frame().to_json();
    let value: serde_json::Value =
        serde_json::from_str(&json).expect("an error frame is valid JSON");
    assert_eq!(value["type"], "error");
    assert_eq!(value["code"], error.code);
}
