// Conversations and what is in them: history pages, live messages and
// their later states, threads, rooms, users and who is online.

import { api, ApiError, olderCursorFrom } from "./api.js";
import { $, el, announce, showError } from "./dom.js";
import { conversation, currentConversation, keyOfMessage, state } from "./state.js";
import { send } from "./connection.js";
import { noteChange, noteMessage, refreshConversations, scheduleMarkRead } from "./unread.js";
import {
  renderConversationList,
  renderMessages,
  renderOnline,
  renderThread,
  renderTyping,
} from "./render.js";

export { currentConversation };

const PAGE_SIZE = 50;
const GLOBAL_FILL = 30; // global messages wanted on screen when opening
const FILL_MAX_PAGES = 10;
// A thread is read whole up to this many pages; replies older than that
// still show once the conversation's history reaches them.
const THREAD_PAGE = 200;
const THREAD_MAX_PAGES = 25;
const TYPING_SHOW_MS = 4000;
// Presence: how many users the client follows at most and how many names
// one subscribe frame carries.
const MAX_FOLLOWED = 200;
const FOLLOW_CHUNK = 50;

function historyPath(conv) {
  const me = encodeURIComponent(state.me.username);
  if (conv.kind === "dm") return `api/messages/between/${me}/${encodeURIComponent(conv.peer)}`;
  if (conv.kind === "room") return `api/rooms/${encodeURIComponent(conv.roomId)}/messages`;
  return "api/messages";
}

/** Redraws whatever shows this conversation. */
function redraw(conv, stickToBottom) {
  if (conv.key !== state.current) return;
  renderMessages(stickToBottom);
  if (state.thread) renderThread();
}

// ------------------------------------------------------------- messages

/** Adds a message where it belongs; `live` ones may count as unread. */
export function receive(msg, live) {
  const key = keyOfMessage(msg);
  const conv = conversation(key);
  if (conv.kind === "room" && conv.title === "Room") learnRoom(conv);
  if (conv.messages.has(msg.id)) return;
  conv.messages.set(msg.id, msg);
  if (msg.reply_to) {
    // Replies are not re-announced through their parent: count them here.
    const parent = conv.messages.get(msg.reply_to);
    if (parent) conv.messages.set(parent.id, { ...parent, reply_count: (parent.reply_count || 0) + 1 });
  }
  if (conv.typing.has(msg.sender)) {
    // They sent what they were typing.
    clearTimeout(conv.typing.get(msg.sender));
    conv.typing.delete(msg.sender);
    if (key === state.current) renderTyping();
  }
  redraw(conv, !msg.reply_to);
  noteMessage(conv, msg, live);
}

/**
 * The current state of a message that was edited, deleted or reacted to.
 * Only messages on screen (or loaded) are updated: one not loaded yet
 * comes in its current state with its history page.
 */
export function applyUpdate(msg) {
  const conv = conversation(keyOfMessage(msg));
  noteChange(conv, msg);
  if (!conv.messages.has(msg.id)) return;
  conv.messages.set(msg.id, msg);
  if (state.editing === msg.id && msg.deleted_at) state.editing = null;
  redraw(conv, false);
}

/** Order of display: creation time (to the nanosecond), then id. */
export function timeKey(msg) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(msg.created_at || "");
  if (!m) return `${msg.created_at}|${msg.id}`;
  return `${m[1]}.${(m[2] || "").padEnd(9, "0")}|${msg.id}`;
}

/** Loads the newest page; callers asking while it loads share the load. */
export function loadLatest(conv) {
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
    if (conv.kind === "global" && !state.since && data.length) {
      state.since = data[data.length - 1].id;
    }
  } catch (err) {
    if (conv.kind === "dm" && err instanceof ApiError && err.status === 404) {
      forgetConversation(conv, `There is no user named ${conv.peer}.`);
    } else showError(`Could not load messages: ${err.message}`);
  } finally {
    conv.loading = false;
  }
}

export async function loadOlder(conv) {
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
  if (conv.key !== state.current) return;
  renderMessages(false);
  scheduleMarkRead();
}

/** The server no longer knows our `since` (it restarted empty): start over. */
export function reloadHistory() {
  state.since = null;
  for (const conv of state.conversations.values()) {
    conv.messages.clear();
    conv.loaded = false;
  }
  closeThread();
  refreshConversations();
  const conv = currentConversation();
  renderMessages(true);
  loadLatest(conv).then(() => {
    if (conv.kind !== "global") loadLatest(conversation("global"));
  });
}

// -------------------------------------------------------------- threads

/**
 * Opens the thread of a message of the current conversation with all its
 * replies, walked back page by page (a few pages at most) as the other
 * lists are.
 */
export async function openThread(id) {
  const conv = currentConversation();
  if (!conv.messages.has(id)) return;
  state.thread = id;
  $("thread").hidden = false;
  renderThread();
  try {
    let before = null;
    for (let page = 0; page < THREAD_MAX_PAGES; page++) {
      const query = before ? `&before=${encodeURIComponent(before)}` : "";
      const { data, link } = await api("GET", `api/messages/${encodeURIComponent(id)}/replies?limit=${THREAD_PAGE}${query}`);
      for (const reply of data) conv.messages.set(reply.id, reply);
      before = olderCursorFrom(link);
      if (!before || data.length === 0 || state.thread !== id) break;
    }
    const parent = conv.messages.get(id);
    const known = [...conv.messages.values()].filter((m) => m.reply_to === id).length;
    if (parent && known > (parent.reply_count || 0)) conv.messages.set(id, { ...parent, reply_count: known });
    if (state.thread === id) {
      renderThread();
      renderMessages(false);
    }
  } catch (err) {
    showError(`Could not load the thread: ${err.message}`);
  }
}

export function closeThread() {
  state.thread = null;
  $("thread").hidden = true;
  $("thread-messages").replaceChildren();
}

// --------------------------------------------------------------- typing

export function showTyping(frame) {
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

// ---------------------------------------------------------------- rooms

function setRoom(room) {
  const conv = conversation(`room:${room.id}`);
  conv.title = room.name;
  conv.creatorId = room.created_by || null;
  renderConversationList();
  if (conv.key === state.current) {
    $("conv-title").textContent = conv.title;
    // Its creator may now be offered Delete on every message.
    redraw(conv, false);
  }
  return conv;
}

/**
 * Reads a room the client knows only by id: one it learned of from a
 * message (someone added us), or from the conversation list, which names
 * no creator. Once is enough; a failed read is tried again next time.
 */
async function learnRoom(conv) {
  if (conv.learning) return;
  conv.learning = true;
  try {
    const { data } = await api("GET", `api/rooms/${encodeURIComponent(conv.roomId)}`);
    setRoom(data);
  } catch {
    conv.learning = false;
  }
}

export async function createRoom(name) {
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

export async function addMember(username) {
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

// ---------------------------------------------------------------- users

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

export async function loadUserOptions() {
  try {
    const { data } = await api("GET", "api/users?limit=200");
    rememberUsers(data);
  } catch {
    // Only suggestions: typing a name still works.
  }
}

export async function loadOnline() {
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
export function followPresence() {
  if (!state.connected) return;
  const fresh = shownUsers().filter((name) => !state.followed.has(name));
  // A frame stays well under the server's size limit.
  for (let i = 0; i < fresh.length; i += FOLLOW_CHUNK) {
    const usernames = fresh.slice(i, i + FOLLOW_CHUNK);
    if (!send({ type: "presence_subscribe", usernames })) return;
    for (const name of usernames) state.followed.add(name);
  }
}

// ----------------------------------------------------------- navigation

export function selectConversation(key) {
  if (state.current !== key) {
    closeThread();
    state.editing = null;
  }
  state.current = key;
  const conv = conversation(key);
  $("conv-title").textContent = conv.kind === "dm" ? `Direct: ${conv.title}` : conv.title;
  $("member-form").hidden = conv.kind !== "room";
  renderConversationList();
  renderMessages(true);
  renderTyping();
  if (!conv.loaded) loadLatest(conv);
  if (conv.kind === "room" && !conv.creatorId) learnRoom(conv);
  scheduleMarkRead();
}

function forgetConversation(conv, why) {
  state.conversations.delete(conv.key);
  if (state.current === conv.key) selectConversation("global");
  renderConversationList();
  showError(why);
}
