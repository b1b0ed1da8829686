// The browser client of the chat service: plain JavaScript modules, no
// build step. This one wires the page's controls to the other modules:
//   api.js            the HTTP API (relative URLs, cookie auth)
//   state.js          what the client knows, keyed by id
//   session.js        signing in and out
//   connection.js     the WebSocket, reconnects, `?since=<cursor>` resume
//   conversations.js  history, live messages and changes, threads, rooms, users
//   composer.js       sending, typing, edits, deletions, reactions
//   unread.js         the conversation list's unread counts, read markers, "Seen"
//   render.js         drawing it all (text as text, never HTML)

import { onUnauthorized } from "./api.js";
import { $, setConnectionStatus, showError } from "./dom.js";
import { currentConversation, state } from "./state.js";
import { reconnect, disconnect } from "./connection.js";
import { addMember, closeThread, createRoom, loadOlder, openThread, selectConversation } from "./conversations.js";
import {
  cancelEdit,
  deleteMessage,
  saveEdit,
  sendMessage,
  sendTyping,
  startEdit,
  toggleReaction,
  typingSent,
} from "./composer.js";
import { authSubmit, logout, sessionEnded, start } from "./session.js";
import { scheduleMarkRead } from "./unread.js";

/** Enter sends, Shift+Enter adds a line. */
function submitOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
}

/** The buttons on messages (main list and thread), by their data-action. */
function onMessageAction(e) {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const id = button.dataset.id;
  switch (button.dataset.action) {
    case "thread":
      openThread(id);
      break;
    case "edit":
      startEdit(id);
      break;
    case "edit-cancel":
      cancelEdit();
      break;
    case "delete":
      deleteMessage(id);
      break;
    case "react":
      toggleReaction(id, button.dataset.emoji);
      break;
    default:
      break;
  }
}

function onEditSubmit(e) {
  const form = e.target.closest("form.edit-form");
  if (!form) return;
  e.preventDefault();
  const input = form.querySelector("textarea");
  if (input) saveEdit(form.dataset.id, input.value);
}

function bindUi() {
  onUnauthorized(sessionEnded);
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

  for (const list of [$("messages"), $("thread-messages")]) {
    list.addEventListener("click", onMessageAction);
    list.addEventListener("submit", onEditSubmit);
    list.addEventListener("input", (e) => {
      if (e.target.dataset && e.target.dataset.testid === "edit-input") state.editDraft = e.target.value;
    });
    list.addEventListener("keydown", (e) => {
      if (e.target.dataset && e.target.dataset.testid === "edit-input" && e.key === "Escape") cancelEdit();
    });
  }

  const composer = $("composer-input");
  composer.addEventListener("input", () => {
    if (composer.value.trim()) sendTyping();
  });
  submitOnEnter(composer, $("composer"));
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const content = composer.value.trim();
    if (!content) return;
    if (sendMessage(content, null)) {
      composer.value = "";
      typingSent();
    }
  });

  const reply = $("thread-input");
  submitOnEnter(reply, $("thread-form"));
  $("thread-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const content = reply.value.trim();
    if (!content || !state.thread) return;
    if (sendMessage(content, state.thread)) reply.value = "";
  });
  $("thread-close").addEventListener("click", closeThread);

  // Coming back to the page, or scrolling down to the newest messages,
  // reads what arrived meanwhile.
  document.addEventListener("visibilitychange", scheduleMarkRead);
  window.addEventListener("focus", scheduleMarkRead);
  $("history").addEventListener("scroll", scheduleMarkRead, { passive: true });

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

bindUi();
start();
