// Read state: the conversation list with its unread counts, the user's
// read marker in each conversation (kept by the server, the same on every
// tab and device) moved as the user reads, and how far the other party of
// a direct conversation has read ("Seen").
//
// A marker only moves forward: the server refuses to move it back, and
// the client never asks it to.

import { api, olderCursorFrom } from "./api.js";
import { showError } from "./dom.js";
import { conversation, currentConversation, state } from "./state.js";
import { timeKey } from "./conversations.js";
import { historyAtBottom, renderConversationList, renderMessages } from "./render.js";

const LIST_PAGE = 200;
const LIST_MAX_PAGES = 5;
// Reading settles before the marker moves: scrolling through a burst of
// messages costs one request, not one per message.
const MARK_READ_AFTER_MS = 400;
const REFRESH_AFTER_MS = 300;

/** The client's key of a conversation the API names by kind and id. */
function keyOf(kind, id) {
  if (kind === "global") return "global";
  return kind === "direct" ? `dm:${id}` : `room:${id}`;
}

/** The API's kind and id of a conversation. */
function pathOf(conv) {
  if (conv.kind === "global") return "global/global";
  const [kind, id] = conv.kind === "dm" ? ["direct", conv.peer] : ["room", conv.roomId];
  return `${kind}/${encodeURIComponent(id)}`;
}

/**
 * Whether the user is looking at the newest messages of this conversation
 * right now: it is open, the page is visible and focused, and the history
 * is scrolled to its end (someone reading older history has not seen what
 * just arrived).
 */
function beingRead(conv) {
  return (
    conv.key === state.current &&
    document.visibilityState === "visible" &&
    document.hasFocus() &&
    historyAtBottom()
  );
}

/** The newest message of a conversation the client holds, or null. */
function newestMessage(conv) {
  let newest = null;
  for (const msg of conv.messages.values()) {
    if (!msg.deleted_at && (!newest || timeKey(msg) > timeKey(newest))) newest = msg;
  }
  return newest;
}

// ------------------------------------------------------------------ list

/** Loads the conversation list, newest activity first, a few pages at most. */
export async function loadConversations() {
  let before = null;
  try {
    for (let page = 0; page < LIST_MAX_PAGES; page++) {
      const query = before ? `&before=${encodeURIComponent(before)}` : "";
      const { data, link } = await api("GET", `api/conversations?limit=${LIST_PAGE}${query}`);
      for (const item of data) applyConversation(item);
      before = olderCursorFrom(link);
      if (!before || data.length === 0) break;
    }
  } catch (err) {
    showError(`Could not load your conversations: ${err.message}`);
  }
  renderConversationList();
  scheduleMarkRead();
}

/** Loads the list again soon; calls in a burst share one load. */
export function refreshConversations() {
  clearTimeout(state.listTimer);
  state.listTimer = setTimeout(loadConversations, REFRESH_AFTER_MS);
}

/** What the server says of one conversation: the truth on its unread count and marker. */
function applyConversation(item) {
  const conv = conversation(keyOf(item.kind, item.id));
  if (item.kind === "room" && item.name) conv.title = item.name;
  conv.unread = item.unread_count || 0;
  const known = item.last_read_id ? conv.messages.get(item.last_read_id) : null;
  conv.readId = item.last_read_id || null;
  conv.readKey = known ? timeKey(known) : null;
  // A server that tells the other party's marker spares waiting for a receipt.
  if (item.peer_last_read_id) conv.peerReadId = item.peer_last_read_id;
  if (item.last_message) {
    conv.listedKey = timeKey(item.last_message);
    noteActivity(conv, item.last_message);
  }
  return conv;
}

/** Moves a conversation up the list if this message is its newest. */
function noteActivity(conv, msg) {
  const key = timeKey(msg);
  if (key <= conv.activity) return;
  conv.activity = key;
  conv.lastId = msg.id;
}

// -------------------------------------------------------------- messages

/**
 * A message new to this page, live or replayed after a reconnect: the
 * conversation moves up, and the message counts as unread unless it is
 * one's own (sending moves one's own marker to it), is being read right
 * now, or is not newer than the newest message the list counted from.
 */
export function noteMessage(conv, msg, live) {
  noteActivity(conv, msg);
  const key = timeKey(msg);
  if (key > conv.listedKey) {
    if (msg.sender === state.me.username) ownMessage(conv, msg, key);
    else if (beingRead(conv)) scheduleMarkRead();
    else if (live) conv.unread++;
  }
  renderConversationList();
}

/** One's own message: one's marker moves to it, nothing before it is unread. */
function ownMessage(conv, msg, key) {
  if (conv.readKey && key <= conv.readKey) return;
  conv.readId = msg.id;
  conv.readKey = key;
  conv.unread = 0;
}

/** A message changed: a deleted one may have been counted as unread. */
export function noteChange(conv, msg) {
  if (!msg.deleted_at || msg.sender === state.me.username || !conv.unread) return;
  if (conv.readKey && timeKey(msg) <= conv.readKey) return;
  refreshConversations();
}

// --------------------------------------------------------------- markers

/**
 * A `read` frame: one's own marker moved (on this tab or another one,
 * here or on another device), or, in a direct conversation, the other
 * party's (a receipt).
 */
export function onRead(frame) {
  if (!frame.kind || !frame.message_id || !state.me) return;
  const mine = frame.username === state.me.username;
  if (!mine) {
    if (frame.kind === "direct" && frame.username) notePeerRead(conversation(`dm:${frame.username}`), frame.message_id);
    return;
  }
  moveMarker(conversation(keyOf(frame.kind, frame.id)), frame.message_id);
}

/** One's own marker moved to a message: fewer unread, never more. */
function moveMarker(conv, id) {
  const msg = conv.messages.get(id);
  const key = msg ? timeKey(msg) : null;
  if (key && conv.readKey && key <= conv.readKey) return;
  conv.readId = id;
  conv.readKey = key;
  if (key) conv.unread = unreadAfter(conv, key);
  else if (id === conv.lastId) conv.unread = 0;
  // A marker on a message this page has not loaded: only the server can count.
  else refreshConversations();
  renderConversationList();
}

/**
 * The messages after a marker that others sent and that are not deleted.
 * Exact: the marker's message is held, so is everything after it (the
 * newest page and the live stream since).
 */
function unreadAfter(conv, key) {
  let n = 0;
  for (const msg of conv.messages.values()) {
    if (!msg.deleted_at && msg.sender !== state.me.username && timeKey(msg) > key) n++;
  }
  return n;
}

/**
 * Notes what the user is looking at now and moves its marker soon: what
 * is seen is decided at once, the request waits for reading to settle.
 */
export function scheduleMarkRead() {
  noteSeen();
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(markSeenRead, MARK_READ_AFTER_MS);
}

/** Remembers the open conversation's newest message if the user is looking at it. */
function noteSeen() {
  const conv = currentConversation();
  if (!beingRead(conv)) return;
  const newest = newestMessage(conv);
  if (newest) state.seen.set(conv.key, newest);
}

/** Moves the marker of every conversation seen since the last time. */
async function markSeenRead() {
  if (!state.me) return;
  noteSeen();
  const seen = [...state.seen];
  state.seen.clear();
  for (const [key, newest] of seen) await markRead(conversation(key), newest);
}

async function markRead(conv, newest) {
  if (newest.id === conv.readId) return;
  const key = timeKey(newest);
  if (conv.readKey && key <= conv.readKey) return;
  // Taken at once, so that a second call meanwhile asks nothing.
  conv.readId = newest.id;
  conv.readKey = key;
  conv.unread = 0;
  renderConversationList();
  try {
    const { data } = await api("PUT", `api/conversations/${pathOf(conv)}/read`, { message_id: newest.id });
    if (data && data.kind) applyConversation(data);
    renderConversationList();
  } catch (err) {
    showError(`Could not mark the conversation read: ${err.message}`);
  }
}

// ------------------------------------------------------------- receipts

/** The other party of a direct conversation has read up to a message. */
function notePeerRead(conv, id) {
  conv.peerReadId = id;
  if (conv.key === state.current) renderMessages(false);
}

/**
 * The last of one's own messages the other party of a direct conversation
 * has read: up to their marker (from their receipts) or their own newest
 * message (sending moves the sender's marker), whichever is later.
 */
export function seenMessageId(conv) {
  if (conv.kind !== "dm") return null;
  const marker = conv.peerReadId && conv.messages.get(conv.peerReadId);
  let upTo = marker ? timeKey(marker) : "";
  for (const msg of conv.messages.values()) {
    if (msg.sender === conv.peer && timeKey(msg) > upTo) upTo = timeKey(msg);
  }
  let seen = null;
  for (const msg of conv.messages.values()) {
    if (msg.sender !== state.me.username || msg.reply_to || msg.deleted_at) continue;
    const key = timeKey(msg);
    if (key <= upTo && (!seen || key > timeKey(seen))) seen = msg;
  }
  return seen ? seen.id : null;
}
