// Drawing the state: conversation lists, who is online, the messages of
// the open conversation and its open thread. Everything is rebuilt from
// the state with el(), text as text.

import { $, el } from "./dom.js";
import { currentConversation, state } from "./state.js";
import { timeKey } from "./conversations.js";
import { seenMessageId } from "./unread.js";

/** The reactions offered on every message. */
export const PALETTE = ["👍", "❤️", "😂", "🎉"];

/** Most recent activity first; conversations without any by name. */
function byActivity(a, b) {
  if (a.activity !== b.activity) return a.activity > b.activity ? -1 : 1;
  return a.title.localeCompare(b.title);
}

/** What tells rooms and direct conversations apart in the one list (global: none). */
const KIND_MARK = { room: "#", dm: "@" };

let listQueued = false;

/**
 * Every conversation in one list, each with its unread count. Drawn once
 * at the end of the current task: a page of the list changes many
 * conversations in a row.
 */
export function renderConversationList() {
  if (listQueued) return;
  listQueued = true;
  queueMicrotask(() => {
    listQueued = false;
    drawConversationList();
  });
}

function drawConversationList() {
  const convs = [...state.conversations.values()].sort(byActivity);
  $("conv-list").replaceChildren(...convs.map(convItem));
  const total = convs.reduce((n, conv) => n + conv.unread, 0);
  document.title = total ? `(${total}) Chat` : "Chat";
}

function convItem(conv) {
  const badge = conv.unread
    ? el("span", { class: "badge", "data-testid": "unread", "aria-label": `${conv.unread} unread` }, String(conv.unread))
    : null;
  const testid = conv.kind === "global" ? "conv-global" : `${conv.kind}-item`;
  const selected = conv.key === state.current;
  const attrs = {
    type: "button",
    class: selected ? "conv active" : "conv",
    "data-conv": conv.key,
    "data-kind": conv.kind,
    "data-testid": testid,
    "data-unread": conv.unread,
    "aria-current": selected ? "true" : null,
  };
  if (conv.kind === "room") attrs["data-room-id"] = conv.roomId;
  if (conv.kind === "dm") attrs["data-username"] = conv.peer;
  const mark = el("span", { class: "kind", "aria-hidden": "true" }, KIND_MARK[conv.kind] || "");
  const name = el("span", { class: "name" }, mark, el("span", { "data-testid": "conv-name" }, conv.title));
  return el("li", {}, el("button", attrs, name, badge));
}

export function renderOnline() {
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

export function renderTyping() {
  const names = [...currentConversation().typing.keys()];
  const text =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
  $("typing").textContent = text;
}

const byTime = (a, b) => (timeKey(a) < timeKey(b) ? -1 : 1);

/** Whether the open conversation is scrolled to its newest message. */
export function historyAtBottom() {
  const box = $("history");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
}

/** The open conversation: its messages, replies left to their thread. */
export function renderMessages(stickToBottom) {
  const conv = currentConversation();
  const box = $("history");
  const atBottom = historyAtBottom();
  const all = [...conv.messages.values()];
  // Replies known here, by parent: a deleted message reports no replies
  // (its tombstone carries nothing), yet its thread stays open to read.
  const known = new Map();
  for (const m of all) if (m.reply_to && !m.deleted_at) known.set(m.reply_to, (known.get(m.reply_to) || 0) + 1);
  const sorted = all.filter((m) => !m.reply_to).sort(byTime);
  const seen = seenMessageId(conv);
  const moderator = createdByMe(conv);
  keepingEditFocus(() =>
    $("messages").replaceChildren(
      ...sorted.map((m) => messageItem(m, { moderator, knownReplies: known.get(m.id) || 0, seen: m.id === seen })),
    ),
  );
  $("load-older").hidden = !conv.olderCursor;
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

/** The open thread: its first message, then the replies. */
export function renderThread() {
  const conv = currentConversation();
  const parent = state.thread && conv.messages.get(state.thread);
  if (!parent) return;
  const replies = [...conv.messages.values()].filter((m) => m.reply_to === parent.id).sort(byTime);
  // The server refuses replies to a deleted message.
  $("thread-form").hidden = Boolean(parent.deleted_at);
  const options = { inThread: true, moderator: createdByMe(conv) };
  keepingEditFocus(() =>
    $("thread-messages").replaceChildren(messageItem(parent, options), ...replies.map((m) => messageItem(m, options))),
  );
  const box = $("thread-messages");
  box.scrollTop = box.scrollHeight;
}

/** Redraws without taking the caret away from a message being edited. */
function keepingEditFocus(draw) {
  const active = document.activeElement;
  const hadFocus = active && active.dataset && active.dataset.testid === "edit-input";
  const where = hadFocus ? [active.selectionStart, active.selectionEnd] : null;
  draw();
  if (!hadFocus) return;
  const input = document.querySelector(`[data-testid="edit-input"][data-id="${CSS.escape(state.editing || "")}"]`);
  if (input) {
    input.focus();
    input.setSelectionRange(where[0], where[1]);
  }
}

/** Whether this conversation is a room the user created: they may delete any of its messages. */
function createdByMe(conv) {
  return conv.kind === "room" && Boolean(state.me && conv.creatorId && conv.creatorId === state.me.id);
}

/**
 * One message. `inThread`: drawn in the thread panel (no thread button);
 * `moderator`: the user may delete it whoever sent it; `knownReplies`: the
 * replies the client holds; `seen`: the other party read up to it.
 */
function messageItem(msg, { inThread = false, moderator = false, knownReplies = 0, seen = false } = {}) {
  const mine = state.me && msg.sender === state.me.username;
  const deleted = Boolean(msg.deleted_at);
  const when = new Date(msg.created_at);
  const time = Number.isNaN(when.getTime()) ? "" : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (deleted) classes.push("deleted");
  const editing = mine && !deleted && state.editing === msg.id;
  return el(
    "li",
    {
      class: classes.join(" "),
      "data-testid": "message",
      "data-id": msg.id,
      "data-sender": msg.sender,
      "data-deleted": deleted,
    },
    el(
      "div",
      { class: "meta" },
      el("span", { class: "sender", "data-testid": "message-sender" }, msg.sender),
      el("time", { datetime: msg.created_at, title: msg.created_at }, time),
      msg.edited_at && !deleted
        ? el("span", { class: "hint", "data-testid": "message-edited", title: msg.edited_at }, "(edited)")
        : null,
    ),
    editing
      ? editForm(msg)
      : el(
          "p",
          { class: deleted ? "content tombstone" : "content", "data-testid": "message-content" },
          deleted ? "This message was deleted" : msg.content,
        ),
    deleted ? null : reactionBar(msg),
    actions(msg, mine, moderator, deleted, inThread, Math.max(deleted ? 0 : msg.reply_count || 0, knownReplies)),
    seen ? el("p", { class: "seen hint", "data-testid": "seen" }, "Seen") : null,
  );
}

function editForm(msg) {
  const inputId = `edit-${msg.id}`;
  const input = el("textarea", {
    id: inputId,
    class: "edit-input",
    "data-testid": "edit-input",
    "data-id": msg.id,
    rows: 2,
    maxlength: 4000,
    required: true,
  });
  input.value = state.editDraft;
  return el(
    "form",
    { class: "edit-form", "data-testid": "edit-form", "data-id": msg.id },
    el("label", { for: inputId, class: "visually-hidden" }, "Edit message"),
    input,
    el(
      "div",
      { class: "row" },
      el("button", { type: "submit", "data-testid": "edit-save" }, "Save"),
      el(
        "button",
        { type: "button", class: "secondary", "data-action": "edit-cancel", "data-testid": "edit-cancel" },
        "Cancel",
      ),
    ),
  );
}

/** The palette, then any other emoji someone used; pressed: you reacted. */
function reactionBar(msg) {
  const byEmoji = new Map((msg.reactions || []).map((r) => [r.emoji, r]));
  const emojis = [...PALETTE, ...[...byEmoji.keys()].filter((e) => !PALETTE.includes(e))];
  return el(
    "div",
    { class: "reactions", role: "group", "aria-label": "Reactions" },
    ...emojis.map((emoji) => {
      const r = byEmoji.get(emoji);
      const count = r ? r.count : 0;
      const users = r ? r.users || [] : [];
      const pressed = Boolean(state.me && users.includes(state.me.username));
      return el(
        "button",
        {
          type: "button",
          class: count ? "reaction used" : "reaction",
          "data-action": "react",
          "data-id": msg.id,
          "data-emoji": emoji,
          "data-testid": "reaction",
          "data-count": count,
          "aria-pressed": pressed ? "true" : "false",
          "aria-label": count ? `${emoji} ${count}, by ${users.join(", ")}` : `React with ${emoji}`,
          title: users.join(", "),
        },
        count ? `${emoji} ${count}` : emoji,
      );
    }),
  );
}

function actions(msg, mine, moderator, deleted, inThread, n) {
  const buttons = [];
  if (!inThread && (!deleted || n)) {
    buttons.push(
      el(
        "button",
        {
          type: "button",
          class: "link",
          "data-action": "thread",
          "data-id": msg.id,
          "data-testid": "thread-open",
          "data-count": n,
          "aria-label": n ? `Open thread, ${n} ${n === 1 ? "reply" : "replies"}` : "Reply in thread",
        },
        n ? `${n} ${n === 1 ? "reply" : "replies"}` : "Reply",
      ),
    );
  }
  // Only the sender edits; the sender or the room's creator deletes.
  if (mine && !deleted && state.editing !== msg.id) {
    buttons.push(
      el(
        "button",
        { type: "button", class: "link", "data-action": "edit", "data-id": msg.id, "data-testid": "message-edit", "aria-label": "Edit message" },
        "Edit",
      ),
    );
  }
  if ((mine || moderator) && !deleted && state.editing !== msg.id) {
    buttons.push(
      el(
        "button",
        { type: "button", class: "link", "data-action": "delete", "data-id": msg.id, "data-testid": "message-delete", "aria-label": "Delete message" },
        "Delete",
      ),
    );
  }
  return buttons.length ? el("div", { class: "actions" }, ...buttons) : null;
}
