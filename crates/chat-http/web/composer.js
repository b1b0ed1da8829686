// What a person writes and changes: new messages and thread replies (over
// the socket, or HTTP when it is down), typing notices, edits, deletions
// and reactions. Each change comes back to every reader, this page
// included, as `message_updated`; the HTTP answer is applied at once too.

import { api } from "./api.js";
import { showError } from "./dom.js";
import { currentConversation, findMessage, state } from "./state.js";
import { send } from "./connection.js";
import { applyUpdate, receive } from "./conversations.js";
import { renderMessages, renderThread } from "./render.js";

const TYPING_SEND_EVERY_MS = 2000;

/** Sends to the open conversation; `replyTo` puts it in that thread. */
export function sendMessage(content, replyTo) {
  const conv = currentConversation();
  const frame = { type: "message", content, client_id: clientId() };
  if (conv.kind === "dm") frame.recipient = conv.peer;
  if (conv.kind === "room") frame.room_id = conv.roomId;
  if (replyTo) frame.reply_to = replyTo;
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

export function sendTyping() {
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

export function typingSent() {
  state.lastTypingSent = 0;
}

function redraw() {
  renderMessages(false);
  if (state.thread) renderThread();
}

/** Swaps a message of one's own for a form holding its text. */
export function startEdit(id) {
  const found = findMessage(id);
  if (!found || found.msg.deleted_at) return;
  state.editing = id;
  state.editDraft = found.msg.content;
  redraw();
  const input = document.querySelector(`[data-testid="edit-input"][data-id="${CSS.escape(id)}"]`);
  if (input) input.focus();
}

export function cancelEdit() {
  state.editing = null;
  state.editDraft = "";
  redraw();
}

export async function saveEdit(id, content) {
  const text = content.trim();
  if (!text) return showError("A message cannot be empty: delete it instead.");
  try {
    const { data } = await api("PATCH", `api/messages/${encodeURIComponent(id)}`, { content: text });
    state.editing = null;
    state.editDraft = "";
    if (data && data.id) applyUpdate(data);
    else redraw();
  } catch (err) {
    showError(`Not edited: ${err.message}`);
  }
}

export async function deleteMessage(id) {
  try {
    await api("DELETE", `api/messages/${encodeURIComponent(id)}`);
    // The answer is only a status: the tombstone arrives as
    // `message_updated`; show it now all the same.
    const found = findMessage(id);
    if (found && !found.msg.deleted_at) {
      applyUpdate({ ...found.msg, content: "", reactions: [], deleted_at: new Date().toISOString() });
    }
  } catch (err) {
    showError(`Not deleted: ${err.message}`);
  }
}

/** Adds one's reaction, or takes it back when it is there. */
export async function toggleReaction(id, emoji) {
  const found = findMessage(id);
  if (!found) return;
  const mine = (found.msg.reactions || []).some((r) => r.emoji === emoji && (r.users || []).includes(state.me.username));
  try {
    const { data } = await api(mine ? "DELETE" : "PUT", `api/messages/${encodeURIComponent(id)}/reactions/${encodeURIComponent(emoji)}`);
    if (data && data.id) applyUpdate(data);
  } catch (err) {
    showError(`Reaction not saved: ${err.message}`);
  }
}
