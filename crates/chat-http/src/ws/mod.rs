//! The WebSocket endpoint, `GET /api/ws/connect`: live delivery of
//! messages, presence and typing, and sending over the same connection.
//!
//! - `upgrade`: checks made while the request is plain HTTP (token,
//!   `Origin`, handshake), registration with the notifier, the 101.
//! - `session`: one task per connection, a `select!` over the client's
//!   frames, the notifier's deliveries, the heartbeat and token expiry.
//! - `frames`: the answer to each client frame, through the same use
//!   cases as HTTP (one send path), with the per-connection rate limit.
//! - `replay`: recovery with `?since=<message id>`: the stored messages
//!   after it, then live, with no gap and no duplicate in between.
//! - `guard`: the frame header guard in front of actix-ws's decoder: a
//!   frame over WEBSOCKET_MAX_MESSAGE_SIZE is refused from its header.
//! - `writer`: actix-ws's `Session`, with writes bounded in time.
//! - `bare`: the same session on the bare TCP socket, when
//!   [`crate::server`] serves the app (an upgraded connection then holds
//!   no HTTP buffers).
//!
//! A client in a browser (the cookie set by login is sent with the
//! upgrade):
//!
//! ```text
//! const ws = new WebSocket(`wss://${location.host}/api/ws/connect`);
//! ws.onmessage = (e) => {
//!   const frame = JSON.parse(e.data); // always exactly one JSON object
//!   if (frame.type === "message" || frame.type === "direct_message") show(frame.message);
//! };
//! ws.onopen = () => ws.send(JSON.stringify({type: "message", content: "hi", client_id: "c1"}));
//! ```
//!
//! After a disconnect, reconnect with the id of the last message received
//! (`/api/ws/connect?since=<id>`): the server replays what was stored
//! after it, then goes on live.
//!
//! Close codes the server sends: 1001 (shutting down, or no pong within
//! WEBSOCKET_PONG_WAIT: reconnect), 1002 (protocol error), 1007 (text not
//! UTF-8), 1008 (the token expired: refresh, then reconnect; or was
//! logged out), 1009 (a
//! frame over WEBSOCKET_MAX_MESSAGE_SIZE), 1013 (the client read too
//! slowly: reconnect and catch up from the history), 4001 (resync: the
//! server missed live messages it could not fill in on this connection;
//! reconnect with the `?since=` the reason names, or reload the history
//! if it names none).

/// How many WebSocket sessions of the process read the store at once to
/// fill a hole of the live stream (`Delivery::Gap`): a hole reaches every
/// connection at the same moment, and thousands of reads at once would
/// take the whole database pool from the HTTP requests (and the pool's
/// waits would time out). The others wait for a permit, their deliveries
/// queued behind the hole.
pub const FILL_CONCURRENCY: usize = 8;

pub(crate) mod bare;
pub(crate) mod connections;
mod frames;
mod guard;
mod replay;
mod session;
mod upgrade;
mod writer;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;

/// Opens a WebSocket.
///
/// The token (`Authorization: Bearer` or the `jwt_token` cookie) and the
/// `Origin` are checked before the upgrade. A user may hold many
/// connections; each gets every event meant for the user. Every text frame,
/// both ways, is exactly one JSON object.
///
/// **Client → server**
/// - `{"type":"message","content":"…"}`: global; add `"recipient":"bob"`
///   for a direct message or `"room_id":"…"` for a room (members only).
///   With `"client_id":"…"` (1-64 visible ASCII) the server answers
///   `{"type":"ack","client_id","message"}` once stored; resending the same
///   `client_id` stores nothing and acks the original.
/// - `{"type":"ping"}` → `{"type":"pong","status":"ok"}`.
/// - `{"type":"typing","recipient"|"room_id"}`: relayed, not stored.
/// - `{"type":"presence_subscribe","usernames":[…]}`: follow these users'
///   presence (at most PRESENCE_MAX_SUBSCRIPTIONS per connection, else an
///   `error` `too_many_subscriptions`); answered at once with one
///   `presence` frame of their current status (`unknown` for a name nobody
///   has). `{"type":"presence_unsubscribe","usernames":[…]}` stops.
///
/// Every frame counts against WEBSOCKET_RATE_LIMIT per connection (per
/// second, bursts of twice that); messages also against MESSAGE_RATE_LIMIT
/// per user, over all of the user's connections and HTTP. A user holds at
/// most WEBSOCKET_MAX_CONNECTIONS_PER_USER connections per instance.
///
/// **Recovery**: `?since=<message id>` (the last message the client got)
/// replays, right after `connection` and in the store's order, every
/// message visible to the user stored after that one, as ordinary
/// `message` / `direct_message` frames, then continues live with no gap
/// and no duplicate between the two. At most WEBSOCKET_REPLAY_LIMIT
/// messages (default 1000) are replayed; past it an `error` frame
/// `replay_truncated` names the last one replayed and the connection goes
/// live: read the rest with `GET /api/messages?after=<that id>`. A `since`
/// that is not a UUID (`validation_error`), or names no message the user
/// can read (`message_not_found`), is answered with an `error` frame,
/// nothing is replayed, and the connection goes live. If the store fails
/// during the replay: an `error` frame (`store_unavailable`), then close
/// 1013: reconnect with the same `since`.
///
/// **Server → client**
/// - first: `{"type":"connection","status":"connected","user_id","username"}`
/// - `{"type":"message","message":Message}` (global and room messages),
///   `{"type":"direct_message","message":Message}` (to both parties), for
///   messages sent over WebSocket and HTTP alike, only after they are stored.
/// - `{"type":"presence","users":[{"username","status"}]}`: the answer to
///   a subscribe, then changes of followed users only (`online` while any
///   of their connections is open on any instance), at most one frame per
///   250 ms, each user's latest status once.
/// - `{"type":"typing","username","recipient"|"room_id"}`.
/// - `{"type":"error","error","code","client_id"?}` for a frame that could
///   not be handled (`invalid_frame`, `unknown_type`, `unsupported_frame`,
///   `validation_error`, `user_not_found`, `room_not_found`,
///   `not_a_member`, `rate_limited`, ...) or a replay that stopped short
///   (`replay_truncated`, `message_not_found`); the connection stays open.
///
/// **Missed live messages**: when the server's fan-out across instances
/// breaks for a while (Redis lost, paused, partitioned), every connection
/// is sent, once it is back and before anything newer, the messages it
/// missed, in order and once, as ordinary frames. When they are more than
/// WEBSOCKET_REPLAY_LIMIT, or cannot be known exactly, the connection is
/// closed with 4001 instead, its reason naming `?since=<cursor>` to reconnect
/// with (drop messages you already have by id), or asking to reload the
/// history when it names none.
///
/// **Close codes**: 1001 server shutting down or heartbeat lost (pings
/// every WEBSOCKET_PING_PERIOD, closed after WEBSOCKET_PONG_WAIT without
/// any frame), 1008 token expired or logged out, 1009 frame over
/// WEBSOCKET_MAX_MESSAGE_SIZE, 1013 the client reads too slowly (or the
/// store failed during a replay), 4001 resync (reconnect with the
/// `since=` the reason names, or reload the history).
#[utoipa::path(
    get,
    path = "/api/ws/connect",
    tag = "realtime",
    params(("since" = Option<String>, Query, format = Uuid,
        description = "The id of the last message received: replay every visible message stored after it, then continue live")),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open"),
        (status = 400, description = "`invalid_handshake`: a malformed WebSocket handshake", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_revoked`", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`: a browser page of an origin that is neither this server's nor in CORS_ALLOWED_ORIGINS", body = ErrorBody),
        (status = 426, description = "`upgrade_required`: a plain GET without `Upgrade: websocket`", body = ErrorBody),
        (status = 429, description = "`too_many_connections`: the user holds WEBSOCKET_MAX_CONNECTIONS_PER_USER connections on this instance already", body = ErrorBody),
        (status = 503, description = "`shutting_down`: the server is shutting down, reconnect; or `store_unavailable`: the token could not be checked", body = ErrorBody),
    ),
    security(("bearer_auth" = []), ("cookie_auth" = []))
)]
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    upgrade::upgrade(req, body, state, caller).await
}
