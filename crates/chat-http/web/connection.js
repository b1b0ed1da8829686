// The WebSocket: connecting, the heartbeat, reconnecting with backoff, and
// resuming the stream with `?since=<cursor>` so nothing is missed or shown
// twice after a drop.

import { api, ApiError } from "./api.js";
import { setConnectionStatus, showError } from "./dom.js";
import { state } from "./state.js";
import {
  applyUpdate,
  currentConversation,
  loadLatest,
  loadOnline,
  receive,
  reloadHistory,
  showTyping,
} from "./conversations.js";
import { renderOnline } from "./render.js";
import { onRead, refreshConversations } from "./unread.js";
import { sessionEnded } from "./session.js";

const PING_EVERY_MS = 25000;
const PONG_WAIT_MS = 10000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
// After this many failed reconnects in a row with `since` while the
// session is fine, the cursor is presumably unknown to the server (an
// in-memory server restarted): connect without it and reload history.
const SINCE_GIVE_UP_AFTER = 3;
const ONLINE_REFRESH_MS = 30000;
// Close code of a server whose live stream had a hole it could not fill
// for this connection: reconnect at once with the `since=` its reason
// names (or reload the history if it names none). Every client of that
// server gets it at the same moment: the reconnects are spread a little.
const RESYNC_CLOSE = 4001;
const RESYNC_JITTER_MS = 1000;

function socketUrl() {
  const url = new URL("api/ws/connect", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (state.since) url.searchParams.set("since", state.since);
  return url.toString();
}

export function connect() {
  if (!state.me) return;
  disconnect();
  const generation = state.socketGeneration;
  const usedSince = Boolean(state.since);
  state.sinceHeld = false;
  setConnectionStatus("connecting", "Connecting…");
  let socket;
  try {
    socket = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  state.socket = socket;
  let opened = false;
  const current = () => generation === state.socketGeneration;
  socket.addEventListener("message", (event) => {
    if (!current()) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "connection") {
      opened = true;
      // Without `since` nothing is replayed, read markers included.
      if (!usedSince) refreshConversations();
    }
    handleFrame(frame);
  });
  socket.addEventListener("close", (event) => {
    if (!current()) return;
    state.socket = null;
    state.connected = false;
    stopHeartbeat();
    if (event.code === RESYNC_CLOSE) return resync(event.reason);
    if (!opened && usedSince) state.failuresWithSince++;
    scheduleReconnect();
  });
}

/**
 * The server missed live messages and could not fill them in on this
 * connection (close 4001): reconnect with the cursor its reason names,
 * from before the gap (our own `since` may lie past it: we kept getting
 * that server's messages; the replay repeats some we have, kept once by
 * id), or, without one, reconnect and reload the history.
 */
function resync(reason) {
  const named = /since=([0-9A-Za-z_-]+)/.exec(reason || "");
  if (named) {
    state.since = named[1];
  } else {
    state.since = null;
    state.reloadOnConnect = true;
  }
  state.reconnectAttempt = 0;
  state.failuresWithSince = 0;
  setConnectionStatus("reconnecting", "Catching up on missed messages…");
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(reconnect, Math.round(Math.random() * RESYNC_JITTER_MS));
}

/** Drops the current socket, if any, and ignores anything it still says. */
export function disconnect() {
  state.socketGeneration++;
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  stopHeartbeat();
  clearInterval(state.onlineTimer);
  state.connected = false;
  if (state.socket) {
    try {
      state.socket.close(1000, "client closing");
    } catch {
      // Already closed.
    }
    state.socket = null;
  }
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s, … up to 30 s. */
function scheduleReconnect() {
  if (!state.me) return;
  if (!navigator.onLine) {
    setConnectionStatus("offline", "Offline: reconnecting when the network is back");
    return;
  }
  const attempt = state.reconnectAttempt++;
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  const delay = Math.round(base / 2 + Math.random() * (base / 2));
  setConnectionStatus("reconnecting", `Disconnected: reconnecting in ${Math.ceil(delay / 1000)} s`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(reconnect, delay);
}

/** Checks the session first: a socket refused for auth looks like any drop. */
export async function reconnect() {
  if (!state.me) return;
  clearTimeout(state.reconnectTimer);
  try {
    await api("GET", "api/auth/profile");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return sessionEnded();
    return scheduleReconnect();
  }
  if (!state.me) return;
  if (state.since && state.failuresWithSince >= SINCE_GIVE_UP_AFTER) {
    state.since = null;
    state.failuresWithSince = 0;
    for (const conv of state.conversations.values()) conv.loaded = false;
    await loadLatest(currentConversation());
  }
  connect();
}

function startHeartbeat() {
  stopHeartbeat();
  state.pingTimer = setInterval(() => {
    if (!send({ type: "ping" })) return;
    clearTimeout(state.pongTimer);
    // No pong in time: the network is gone without telling us.
    state.pongTimer = setTimeout(() => state.socket && state.socket.close(4000, "no pong"), PONG_WAIT_MS);
  }, PING_EVERY_MS);
}

function stopHeartbeat() {
  clearInterval(state.pingTimer);
  clearTimeout(state.pongTimer);
}

/** Sends a frame if the socket is open; whether it was sent. */
export function send(frame) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
  state.socket.send(JSON.stringify(frame));
  return true;
}

/**
 * Frames from the store arrive in the store's order, each with its
 * `cursor`: the last one is where a reconnect resumes. An `ack` has a
 * cursor too but may overtake frames stored just before it, so it never
 * moves `since`.
 */
function advance(cursor) {
  if (cursor && !state.sinceHeld) state.since = cursor;
}

function handleFrame(frame) {
  switch (frame.type) {
    case "connection":
      state.connected = true;
      state.reconnectAttempt = 0;
      state.failuresWithSince = 0;
      setConnectionStatus("connected", "Connected");
      startHeartbeat();
      // A new connection follows nobody yet.
      state.followed.clear();
      state.online.add(state.me.username);
      loadOnline();
      clearInterval(state.onlineTimer);
      state.onlineTimer = setInterval(loadOnline, ONLINE_REFRESH_MS);
      if (state.reloadOnConnect) {
        // Live first, then the history: nothing falls in between.
        state.reloadOnConnect = false;
        reloadHistory();
      }
      break;
    case "message":
    case "direct_message":
      if (frame.message) {
        // A server without cursors resumes from message ids.
        advance(frame.cursor || frame.message.id);
        receive(frame.message, true);
      }
      break;
    case "message_updated":
      if (frame.message) {
        advance(frame.cursor);
        applyUpdate(frame.message);
      }
      break;
    case "ack":
      if (frame.message) receive(frame.message, false);
      break;
    case "presence":
      for (const user of frame.users || []) {
        if (user.status === "online") state.online.add(user.username);
        else state.online.delete(user.username);
      }
      renderOnline();
      break;
    case "read":
      advance(frame.cursor);
      onRead(frame);
      break;
    case "typing":
      showTyping(frame);
      break;
    case "pong":
      clearTimeout(state.pongTimer);
      break;
    case "error":
      if (frame.code === "replay_truncated") resumeFromTruncation(frame.error);
      else if (frame.code === "message_not_found" && !frame.client_id) reloadHistory();
      else showError(`${frame.error} (${frame.code})`);
      break;
    default:
      break;
  }
}

/**
 * The replay after a reconnect stopped at its limit and names the cursor
 * to go on from: hold `since` there (live frames that follow are later
 * than the gap) and reconnect at once for the rest.
 */
function resumeFromTruncation(text) {
  const m = /since=([0-9A-Za-z_-]+)/.exec(text || "");
  if (!m) {
    reloadHistory();
    return;
  }
  state.since = m[1];
  state.sinceHeld = true;
  connect();
}
