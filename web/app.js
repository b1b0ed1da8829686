// The browser client of the chat service: plain JavaScript, no build step.
//
// Rules this file keeps:
// - Every piece of text a user wrote is put in the page as text
//   (textContent / createTextNode), never parsed as HTML.
// - Every URL is relative to the page, so the client works wherever the API
//   is mounted (at the root, under a prefix, behind nginx).
// - Auth is the HttpOnly `jwt_token` cookie: the script never sees the token.
// - Messages are keyed by id: a message that arrives twice (replay after a
//   reconnect, the ack and the live frame of one send, a history page) is
//   shown once.
"use strict";

(() => {
  const PAGE_SIZE = 50;
  const GLOBAL_FILL = 30; // global messages wanted on screen when opening
  const FILL_MAX_PAGES = 10;
  const TYPING_SEND_EVERY_MS = 2000;
  const TYPING_SHOW_MS = 4000;
  const PING_EVERY_MS = 25000;
  const PONG_WAIT_MS = 10000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  // After this many failed reconnects in a row with `since` while the
  // session is fine, the cursor is presumably unknown to the server (an
  // in-memory server restarted): connect without it and reload history.
  const SINCE_GIVE_UP_AFTER = 3;
  // Close code of a server whose live stream had a hole it could not fill
  // for this connection: reconnect at once with the `since=` its reason
  // names (or reload the history if it names none). Every client of that
  // server gets it at the same moment: the reconnects are spread a little.
  const RESYNC_CLOSE = 4001;
  const RESYNC_JITTER_MS = 1000;
  // Presence: how many users the client follows at most, how many names
  // one subscribe frame carries, and how often the online list is read
  // again (someone who comes online and is not followed yet).
  const MAX_FOLLOWED = 200;
  const FOLLOW_CHUNK = 50;
  const ONLINE_REFRESH_MS = 30000;
  const REFRESH_BEFORE_EXPIRY_S = 10 * 60;
  const REFRESH_RETRY_MS = 5 * 60 * 1000;

  const $ = (id) => {
    const node = document.getElementById(id);
    if (!node) throw new Error(`missing #${id}`);
    return node;
  };

  // ---------------------------------------------------------------- state

  const state = {
    me: null, // {id, username}
    conversations: new Map(), // key -> Conversation
    current: "global",
    online: new Set(),
    followed: new Set(), // usernames this connection follows the presence of
    onlineTimer: null,
    usersByName: new Map(), // username -> id
    socket: null,
    socketGeneration: 0,
    connected: false,
    reconnectAttempt: 0,
    failuresWithSince: 0,
    reconnectTimer: null,
    reloadOnConnect: false, // a resync without `since`: reload once connected
    pingTimer: null,
    pongTimer: null,
    refreshTimer: null,
    lastStreamId: null, // id of the last message received in stream order (or the cursor a resync named)
    lastTypingSent: 0,
    lastTypingKey: null,
  };

  /** A conversation: "global", "dm:<username>" or "room:<id>". */
  function conversation(key) {
    let conv = state.conversations.get(key);
    if (!conv) {
      const [kind, rest] = key === "global" ? ["global", null] : splitKey(key);
      conv = {
        key,
        kind,
        peer: kind === "dm" ? rest : null,
        roomId: kind === "room" ? rest : null,
        title: kind === "global" ? "Everyone" : kind === "dm" ? rest : "Room",
        messages: new Map(), // id -> message
        loaded: false,
        loading: false,
        olderCursor: null, // `before=` for the next older page, null when none
        unread: 0,
        typing: new Map(), // username -> timer
      };
      state.conversations.set(key, conv);
      if (kind !== "global") renderConversationList();
      if (kind === "dm") followPresence();
    }
    return conv;
  }

  function splitKey(key) {
    const at = key.indexOf(":");
    return [key.slice(0, at), key.slice(at + 1)];
  }

  /** The conversation a message belongs to, from the caller's side. */
  function keyOfMessage(msg) {
    if (msg.room_id) return `room:${msg.room_id}`;
    if (msg.recipient) {
      const peer = msg.sender === state.me.username ? msg.recipient : msg.sender;
      return `dm:${peer}`;
    }
    return "global";
  }

  // ------------------------------------------------------------------ DOM

  /**
   * Builds an element. `attrs` are set with setAttribute (never event
   * handler attributes); string children become text nodes.
   */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) throw new Error("no inline handlers");
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function showError(text) {
    const banner = $("error");
    banner.textContent = text;
    banner.hidden = !text;
  }

  function setConnectionStatus(stateName, text) {
    const node = document.querySelector('[data-testid="connection-status"]');
    node.dataset.state = stateName;
    node.textContent = text;
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.code) || "http_error";
    }
  }

  /** Calls the API (relative path, cookie auth); JSON body and response. */
  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = new ApiError(res.status, data);
      if (res.status === 401 && state.me && !path.startsWith("api/auth/")) sessionEnded();
      throw err;
    }
    return { data, link: res.headers.get("Link") };
  }

  /** The `before=` cursor of the Link header's rel="prev", or null. */
  function olderCursorFrom(link) {
    if (!link) return null;
    for (const part of link.split(",")) {
      const m = part.match(/<([^>]*)>\s*;\s*rel="?prev"?/);
      if (m) {
        const query = m[1].split("?")[1] || "";
        return new URLSearchParams(query).get("before");
      }
    }
    return null;
  }

  function historyPath(conv) {
    const me = encodeURIComponent(state.me.username);
    if (conv.kind === "dm") return `api/messages/between/${me}/${encodeURIComponent(conv.peer)}`;
    if (conv.kind === "room") return `api/rooms/${encodeURIComponent(conv.roomId)}/messages`;
    return "api/messages";
  }

  // ------------------------------------------------------------- sessions

  async function start() {
    bindUi();
    try {
      const { data } = await api("GET", "api/auth/profile");
      await signedIn(data);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) showAuth();
      else {
        showAuth();
        showError(`The server did not answer: ${err.message}`);
      }
    }
  }

  function showAuth() {
    $("chat-view").hidden = true;
    $("whoami").hidden = true;
    $("auth-view").hidden = false;
    setConnectionStatus("idle", "");
    $("auth-username").focus();
  }

  async function signedIn(user, expiresAt) {
    state.me = { id: user.id, username: user.username };
    state.usersByName.set(user.username, user.id);
    $("me-name").textContent = user.username;
    $("whoami").hidden = false;
    $("auth-view").hidden = true;
    $("chat-view").hidden = false;
    showError("");
    scheduleRefresh(expiresAt);
    selectConversation("global");
    await Promise.allSettled([loadLatest(conversation("global")), loadRooms(), loadUserOptions()]);
    connect();
  }

  async function authSubmit(register) {
    const username = $("auth-username").value.trim();
    const password = $("auth-password").value;
    const email = $("auth-email").value.trim();
    if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
      return showError("A username is 3 to 32 letters, digits, '_', '.' or '-'.");
    }
    if (password.length < 8) return showError("A password has at least 8 characters.");
    try {
      if (register) {
        if (!email) return showError("An email address is needed to register.");
        await api("POST", "api/auth/register", { username, email, password });
      }
      const { data } = await api("POST", "api/auth/login", { username, password });
      $("auth-password").value = "";
      await signedIn(data.user, data.expires_at);
    } catch (err) {
      showError(err.message);
    }
  }

  /**
   * Keeps the session alive: the server renews a token in its last 15
   * minutes. With the expiry unknown (the page was reloaded: the cookie is
   * HttpOnly), it tries now and then until the server agrees.
   */
  function scheduleRefresh(expiresAt) {
    clearTimeout(state.refreshTimer);
    const inMs = expiresAt ? (expiresAt - REFRESH_BEFORE_EXPIRY_S) * 1000 - Date.now() : REFRESH_RETRY_MS;
    state.refreshTimer = setTimeout(async () => {
      if (!state.me) return;
      try {
        const { data } = await api("POST", "api/auth/refresh");
        scheduleRefresh(data.expires_at);
      } catch {
        // Not yet eligible, or the network is down: try again later. An
        // expired session shows up at the next API call or reconnect.
        scheduleRefresh(null);
      }
    }, Math.max(inMs, 1000));
  }

  async function logout() {
    try {
      await api("POST", "api/auth/logout");
    } catch {
      // Logged out locally whatever the server said.
    }
    resetSession();
    showAuth();
  }

  function sessionEnded() {
    resetSession();
    showAuth();
    showError("Your session ended. Please log in again.");
  }

  function resetSession() {
    disconnect();
    clearTimeout(state.refreshTimer);
    state.me = null;
    state.conversations.clear();
    state.online.clear();
    state.followed.clear();
    clearInterval(state.onlineTimer);
    state.usersByName.clear();
    state.lastStreamId = null;
    state.reloadOnConnect = false;
    state.current = "global";
    $("room-list").replaceChildren();
    $("dm-list").replaceChildren();
    $("online-list").replaceChildren();
    $("messages").replaceChildren();
  }

  // ------------------------------------------------------------ WebSocket

  function socketUrl() {
    const url = new URL("api/ws/connect", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (state.lastStreamId) url.searchParams.set("since", state.lastStreamId);
    return url.toString();
  }

  function connect() {
    if (!state.me) return;
    disconnect();
    const generation = state.socketGeneration;
    const usedSince = Boolean(state.lastStreamId);
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
      if (frame.type === "connection") opened = true;
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
   * connection (close 4001): reconnect with the `since` its reason names,
   * a cursor from before the gap (the replay repeats some messages we
   * have: they are kept by id), or, without one, reconnect and reload the
   * history. Our own `lastStreamId` may lie past the gap.
   */
  function resync(reason) {
    const named = /since=([^\s&]+)/.exec(reason || "");
    if (named) {
      state.lastStreamId = named[1];
    } else {
      state.lastStreamId = null;
      state.reloadOnConnect = true;
    }
    state.reconnectAttempt = 0;
    state.failuresWithSince = 0;
    setConnectionStatus("reconnecting", "Catching up on missed messages…");
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(reconnect, Math.round(Math.random() * RESYNC_JITTER_MS));
  }

  /** Drops the current socket, if any, and ignores anything it still says. */
  function disconnect() {
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
  async function reconnect() {
    if (!state.me) return;
    clearTimeout(state.reconnectTimer);
    try {
      await api("GET", "api/auth/profile");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return sessionEnded();
      return scheduleReconnect();
    }
    if (!state.me) return;
    if (state.lastStreamId && state.failuresWithSince >= SINCE_GIVE_UP_AFTER) {
      state.lastStreamId = null;
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
  function send(frame) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
    state.socket.send(JSON.stringify(frame));
    return true;
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
          state.lastStreamId = frame.message.id;
          receive(frame.message, true);
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
      case "typing":
        showTyping(frame);
        break;
      case "pong":
        clearTimeout(state.pongTimer);
        break;
      case "error":
        if (frame.code === "replay_truncated") catchUp(state.lastStreamId);
        else if (frame.code === "message_not_found" && !frame.client_id) reloadHistory();
        else showError(`${frame.error} (${frame.code})`);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------- recovery

  /**
   * The replay after a reconnect stopped at its limit: the rest, from the
   * last message it sent, page by page over HTTP (live frames go on
   * meanwhile; ids keep everything once).
   */
  async function catchUp(after) {
    let cursor = after;
    try {
      while (cursor) {
        const { data, link } = await api("GET", `api/messages?limit=200&after=${encodeURIComponent(cursor)}`);
        for (const msg of data) receive(msg, true);
        cursor = data.length && /rel="?next"?/.test(link || "") ? data[data.length - 1].id : null;
      }
    } catch (err) {
      showError(`Could not load missed messages: ${err.message}`);
    }
  }

  /** The server no longer knows our `since` (it restarted empty): start over. */
  function reloadHistory() {
    state.lastStreamId = null;
    for (const conv of state.conversations.values()) {
      conv.messages.clear();
      conv.loaded = false;
    }
    const conv = currentConversation();
    renderMessages(true);
    loadLatest(conv).then(() => {
      if (conv.kind !== "global") loadLatest(conversation("global"));
    });
  }

  // ------------------------------------------------------------- messages

  /** Adds a message where it belongs; `live` ones count as unread elsewhere. */
  function receive(msg, live) {
    const key = keyOfMessage(msg);
    const conv = conversation(key);
    if (conv.kind === "room" && conv.title === "Room") discoverRoom(conv);
    if (conv.messages.has(msg.id)) return;
    conv.messages.set(msg.id, msg);
    if (conv.typing.has(msg.sender)) {
      // They sent what they were typing.
      clearTimeout(conv.typing.get(msg.sender));
      conv.typing.delete(msg.sender);
      if (key === state.current) renderTyping();
    }
    if (key === state.current) {
      renderMessages(true);
    } else if (live && msg.sender !== state.me.username) {
      conv.unread++;
      renderConversationList();
    }
  }

  /** Order of display: creation time (to the nanosecond), then id. */
  function timeKey(msg) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(msg.created_at || "");
    if (!m) return `${msg.created_at}|${msg.id}`;
    return `${m[1]}.${(m[2] || "").padEnd(9, "0")}|${msg.id}`;
  }

  /** Loads the newest page; callers asking while it loads share the load. */
  function loadLatest(conv) {
    if (!conv.latestLoad) {
      conv.latestLoad = fetchLatest(conv).finally(() => {
        conv.latestLoad = null;
      });
    }
    return conv.latestLoad;
  }

  async function fetchLatest(conv) {
    conv.loading = true;
    try {
      const { data, link } = await api("GET", `${historyPath(conv)}?limit=${PAGE_SIZE}`);
      addPage(conv, data, link);
      conv.loaded = true;
      if (conv.kind === "global") await readOn(conv, GLOBAL_FILL);
      // Before the first connect, the newest visible message is where the
      // stream starts: `since` covers what is sent while connecting.
      if (conv.kind === "global" && !state.lastStreamId && data.length) {
        state.lastStreamId = data[data.length - 1].id;
      }
    } catch (err) {
      if (conv.kind === "dm" && err instanceof ApiError && err.status === 404) {
        forgetConversation(conv, `There is no user named ${conv.peer}.`);
      } else showError(`Could not load messages: ${err.message}`);
    } finally {
      conv.loading = false;
    }
  }

  async function loadOlder(conv) {
    if (!conv.olderCursor || conv.loading) return;
    conv.loading = true;
    const list = $("history");
    const fromBottom = list.scrollHeight - list.scrollTop;
    try {
      await fetchOlder(conv);
      if (conv.kind === "global") await readOn(conv, conv.messages.size + 1);
      if (conv.key === state.current) list.scrollTop = list.scrollHeight - fromBottom;
    } catch (err) {
      showError(`Could not load older messages: ${err.message}`);
    } finally {
      conv.loading = false;
    }
  }

  async function fetchOlder(conv) {
    const cursor = encodeURIComponent(conv.olderCursor);
    const { data, link } = await api("GET", `${historyPath(conv)}?limit=${PAGE_SIZE}&before=${cursor}`);
    addPage(conv, data, link);
  }

  /**
   * The global feed is `GET /api/messages` (everything the caller may read)
   * with only global messages kept: pages full of direct and room messages
   * would leave it short, so it reads on, a few pages at most.
   */
  async function readOn(conv, wanted) {
    for (let page = 0; page < FILL_MAX_PAGES && conv.olderCursor && conv.messages.size < wanted; page++) {
      await fetchOlder(conv);
    }
  }

  /** Merges a history page; the global feed keeps only global messages. */
  function addPage(conv, items, link) {
    conv.olderCursor = olderCursorFrom(link);
    for (const msg of items) {
      const key = keyOfMessage(msg);
      if (key === conv.key) conv.messages.set(msg.id, msg);
      else if (key.startsWith("dm:")) conversation(key); // list the partner
    }
    if (conv.key === state.current) renderMessages(false);
  }

  function sendMessage(content) {
    const conv = currentConversation();
    const frame = { type: "message", content, client_id: clientId() };
    if (conv.kind === "dm") frame.recipient = conv.peer;
    if (conv.kind === "room") frame.room_id = conv.roomId;
    if (send(frame)) return true;
    // No socket right now: the same send over HTTP.
    const { type, ...body } = frame;
    api("POST", "api/messages", body)
      .then(({ data }) => receive(data, false))
      .catch((err) => showError(`Not sent: ${err.message}`));
    return true;
  }

  function clientId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // --------------------------------------------------------------- typing

  function sendTyping() {
    const conv = currentConversation();
    if (conv.kind === "global") return;
    const now = Date.now();
    if (state.lastTypingKey === conv.key && now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    const frame = conv.kind === "dm" ? { type: "typing", recipient: conv.peer } : { type: "typing", room_id: conv.roomId };
    if (send(frame)) {
      state.lastTypingSent = now;
      state.lastTypingKey = conv.key;
    }
  }

  function showTyping(frame) {
    if (!frame.username || frame.username === state.me.username) return;
    const key = frame.room_id ? `room:${frame.room_id}` : `dm:${frame.username}`;
    const conv = conversation(key);
    clearTimeout(conv.typing.get(frame.username));
    conv.typing.set(
      frame.username,
      setTimeout(() => {
        conv.typing.delete(frame.username);
        renderTyping();
      }, TYPING_SHOW_MS),
    );
    renderTyping();
  }

  function renderTyping() {
    const names = [...currentConversation().typing.keys()];
    const text =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
    $("typing").textContent = text;
  }

  // ---------------------------------------------------------------- rooms

  async function loadRooms() {
    try {
      const me = encodeURIComponent(state.me.id);
      const { data } = await api("GET", `api/users/${me}/rooms?limit=200`);
      for (const room of data) setRoom(room);
    } catch (err) {
      showError(`Could not load your rooms: ${err.message}`);
    }
  }

  function setRoom(room) {
    const conv = conversation(`room:${room.id}`);
    conv.title = room.name;
    renderConversationList();
    if (conv.key === state.current) $("conv-title").textContent = conv.title;
    return conv;
  }

  /** A message from a room we did not know yet (someone added us). */
  async function discoverRoom(conv) {
    if (conv.discovering) return;
    conv.discovering = true;
    try {
      const { data } = await api("GET", `api/rooms/${encodeURIComponent(conv.roomId)}`);
      setRoom(data);
    } catch {
      conv.discovering = false;
    }
  }

  async function createRoom(name) {
    try {
      const { data } = await api("POST", "api/rooms", { name });
      const conv = setRoom(data);
      conv.loaded = true; // a new room has no history
      selectConversation(conv.key);
      return true;
    } catch (err) {
      showError(`Could not create the room: ${err.message}`);
      return false;
    }
  }

  async function addMember(username) {
    const conv = currentConversation();
    if (conv.kind !== "room") return false;
    try {
      const id = await userIdOf(username);
      if (!id) {
        showError(`There is no user named ${username}.`);
        return false;
      }
      await api("POST", `api/rooms/${encodeURIComponent(conv.roomId)}/members/${encodeURIComponent(id)}`);
      showError("");
      announce(`${username} was added to ${conv.title}.`);
      return true;
    } catch (err) {
      showError(`Could not add ${username}: ${err.message}`);
      return false;
    }
  }

  /** A user's id by name, walking the user list back page by page. */
  async function userIdOf(username) {
    if (state.usersByName.has(username)) return state.usersByName.get(username);
    let cursor = null;
    for (let page = 0; page < 50; page++) {
      const before = cursor ? `&before=${encodeURIComponent(cursor)}` : "";
      const { data, link } = await api("GET", `api/users?limit=200${before}`);
      rememberUsers(data);
      if (state.usersByName.has(username)) return state.usersByName.get(username);
      cursor = olderCursorFrom(link);
      if (!cursor) return null;
    }
    return null;
  }

  function rememberUsers(users) {
    for (const u of users) state.usersByName.set(u.username, u.id);
    followPresence();
    const options = $("user-options");
    options.replaceChildren(
      ...[...state.usersByName.keys()]
        .filter((name) => name !== state.me.username)
        .sort()
        .map((name) => el("option", { value: name })),
    );
  }

  async function loadUserOptions() {
    try {
      const { data } = await api("GET", "api/users?limit=200");
      rememberUsers(data);
    } catch {
      // Only suggestions: typing a name still works.
    }
  }

  async function loadOnline() {
    try {
      const { data } = await api("GET", `api/ws/users?limit=${MAX_FOLLOWED}`);
      for (const name of data.connected_users) state.online.add(name);
      renderOnline();
    } catch {
      // Presence frames keep the list going.
    }
    followPresence();
  }

  /**
   * Whom the client shows, bounded: its direct-message partners, the
   * users it knows (the name suggestions, which hold the rooms' members)
   * and its online list.
   */
  function shownUsers() {
    const names = new Set();
    for (const conv of state.conversations.values()) if (conv.kind === "dm") names.add(conv.peer);
    for (const name of state.usersByName.keys()) names.add(name);
    for (const name of state.online) names.add(name);
    if (state.me) names.delete(state.me.username);
    return [...names].slice(0, MAX_FOLLOWED);
  }

  /**
   * Follows the presence of whoever is shown and not yet followed; the
   * server answers with their status now, then sends only changes.
   */
  function followPresence() {
    if (!state.connected) return;
    const fresh = shownUsers().filter((name) => !state.followed.has(name));
    // A frame stays well under the server's size limit.
    for (let i = 0; i < fresh.length; i += FOLLOW_CHUNK) {
      const usernames = fresh.slice(i, i + FOLLOW_CHUNK);
      if (!send({ type: "presence_subscribe", usernames })) return;
      for (const name of usernames) state.followed.add(name);
    }
  }

  // ---------------------------------------------------------- navigation

  function currentConversation() {
    return conversation(state.current);
  }

  function selectConversation(key) {
    state.current = key;
    const conv = conversation(key);
    conv.unread = 0;
    $("conv-title").textContent = conv.kind === "dm" ? `Direct: ${conv.title}` : conv.title;
    $("member-form").hidden = conv.kind !== "room";
    renderConversationList();
    renderMessages(true);
    renderTyping();
    if (!conv.loaded) loadLatest(conv);
  }

  function forgetConversation(conv, why) {
    state.conversations.delete(conv.key);
    if (state.current === conv.key) selectConversation("global");
    renderConversationList();
    showError(why);
  }

  function announce(text) {
    const notice = $("notice");
    notice.textContent = text;
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(() => {
      notice.textContent = "";
    }, 5000);
  }

  // ------------------------------------------------------------ rendering

  function renderConversationList() {
    const rooms = [];
    const dms = [];
    for (const conv of state.conversations.values()) {
      if (conv.kind === "room") rooms.push(conv);
      if (conv.kind === "dm") dms.push(conv);
    }
    const byTitle = (a, b) => a.title.localeCompare(b.title);
    $("room-list").replaceChildren(...rooms.sort(byTitle).map((c) => convItem(c, "room")));
    $("dm-list").replaceChildren(...dms.sort(byTitle).map((c) => convItem(c, "dm")));
    for (const button of document.querySelectorAll("button.conv")) {
      const selected = button.dataset.conv === state.current;
      button.classList.toggle("active", selected);
      if (selected) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function convItem(conv, kind) {
    const badge = conv.unread
      ? el("span", { class: "badge", "data-testid": "unread", "aria-label": `${conv.unread} unread` }, String(conv.unread))
      : null;
    const attrs = { type: "button", class: "conv", "data-conv": conv.key, "data-testid": `${kind}-item` };
    if (kind === "room") attrs["data-room-id"] = conv.roomId;
    else attrs["data-username"] = conv.peer;
    return el("li", {}, el("button", attrs, el("span", { class: "name", "data-testid": "conv-name" }, conv.title), badge));
  }

  function renderOnline() {
    const names = [...state.online].sort();
    $("online-count").textContent = String(names.length);
    $("online-list").replaceChildren(
      ...names.map((name) => {
        const you = state.me && name === state.me.username;
        return el(
          "li",
          { "data-testid": "online-user", "data-username": name },
          el("span", { class: "dot", "aria-hidden": "true" }),
          el("span", {}, name),
          you ? el("span", { class: "hint" }, " (you)") : null,
        );
      }),
    );
  }

  function renderMessages(stickToBottom) {
    const conv = currentConversation();
    const box = $("history");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const sorted = [...conv.messages.values()].sort((a, b) => (timeKey(a) < timeKey(b) ? -1 : 1));
    $("messages").replaceChildren(...sorted.map(messageItem));
    $("load-older").hidden = !conv.olderCursor;
    if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
  }

  function messageItem(msg) {
    const mine = state.me && msg.sender === state.me.username;
    const when = new Date(msg.created_at);
    const time = Number.isNaN(when.getTime()) ? "" : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return el(
      "li",
      { class: mine ? "message mine" : "message", "data-testid": "message", "data-id": msg.id, "data-sender": msg.sender },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "sender", "data-testid": "message-sender" }, msg.sender),
        el("time", { datetime: msg.created_at, title: msg.created_at }, time),
      ),
      el("p", { class: "content", "data-testid": "message-content" }, msg.content),
    );
  }

  // ------------------------------------------------------------------- UI

  function bindUi() {
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      authSubmit(false);
    });
    $("register").addEventListener("click", () => authSubmit(true));
    $("logout").addEventListener("click", logout);
    $("error").addEventListener("click", () => showError(""));

    document.querySelector(".sidebar").addEventListener("click", (e) => {
      const button = e.target.closest("button.conv");
      if (button) selectConversation(button.dataset.conv);
    });

    $("room-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = $("room-name");
      const name = input.value.trim();
      if (name && (await createRoom(name))) input.value = "";
    });

    $("dm-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("dm-user");
      const name = input.value.trim();
      if (!name) return;
      if (name === state.me.username) return showError("Pick someone other than yourself.");
      input.value = "";
      selectConversation(`dm:${name}`);
    });

    $("member-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = $("member-name");
      const name = input.value.trim();
      if (name && (await addMember(name))) input.value = "";
    });

    $("load-older").addEventListener("click", () => loadOlder(currentConversation()));

    const composer = $("composer-input");
    composer.addEventListener("input", () => {
      if (composer.value.trim()) sendTyping();
    });
    composer.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const content = composer.value.trim();
      if (!content) return;
      if (sendMessage(content)) {
        composer.value = "";
        state.lastTypingSent = 0;
      }
    });

    // The browser knows first when the network goes: drop the socket at
    // once (it may linger half-open) and come back as soon as it returns.
    window.addEventListener("offline", () => {
      if (!state.me) return;
      disconnect();
      setConnectionStatus("offline", "Offline: reconnecting when the network is back");
    });
    window.addEventListener("online", () => {
      if (!state.me) return;
      state.reconnectAttempt = 0;
      reconnect();
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
