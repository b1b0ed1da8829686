// What the client knows, in one object, and the conversations it shows.
//
// Messages are keyed by id: a message that arrives twice (replay after a
// reconnect, the ack and the live frame of one send, a history page) is
// kept once, and a later state of it (`message_updated`) replaces it.

import { followPresence } from "./conversations.js";
import { renderConversationList } from "./render.js";

export const state = {
  me: null, // {id, username}
  conversations: new Map(), // key -> Conversation
  current: "global",
  thread: null, // id of the message whose thread is open, or null
  editing: null, // id of the message being edited, or null
  editDraft: "", // its text so far (kept across redraws)
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
  pingTimer: null,
  pongTimer: null,
  refreshTimer: null,
  // Where the stream resumes after a reconnect: the `cursor` of the last
  // stored frame received in stream order, or, before the first one, the
  // id of the newest message loaded (the server takes both).
  since: null,
  // Set when a replay stopped at its limit: `since` stays at the cursor it
  // named until the next socket, whatever live frames say meanwhile.
  sinceHeld: false,
  // A resync (close 4001) named no cursor: reload the history once the
  // next socket is live.
  reloadOnConnect: false,
  readTimer: null, // moves the markers of what was seen, debounced
  // Conversation key -> the newest message it showed while the user was
  // looking at it, not yet sent as a read (leaving a conversation before
  // the timer fires must not lose that it was read).
  seen: new Map(),
  listTimer: null, // reloads the conversation list, debounced
  lastTypingSent: 0,
  lastTypingKey: null,
};

/** A conversation: "global", "dm:<username>" or "room:<id>". */
export function conversation(key) {
  let conv = state.conversations.get(key);
  if (!conv) {
    const [kind, rest] = key === "global" ? ["global", null] : splitKey(key);
    conv = {
      key,
      kind,
      peer: kind === "dm" ? rest : null,
      roomId: kind === "room" ? rest : null,
      title: kind === "global" ? "Everyone" : kind === "dm" ? rest : "Room",
      // A room's `created_by` (a user id), once the room itself was read:
      // its creator may delete any message of it.
      creatorId: null,
      messages: new Map(), // id -> message, replies included
      loaded: false,
      loading: false,
      olderCursor: null, // `before=` for the next older page, null when none
      // Read state (unread.js): what the server counts as unread, the
      // user's marker, the other party's marker in a direct conversation,
      // the newest activity (timeKey of the newest message) with its id,
      // and the timeKey of the newest message the list counted from.
      unread: 0,
      readId: null,
      readKey: null,
      peerReadId: null,
      activity: "",
      lastId: null,
      listedKey: "",
      typing: new Map(), // username -> timer
    };
    state.conversations.set(key, conv);
    renderConversationList();
    if (kind === "dm") followPresence();
  }
  return conv;
}

function splitKey(key) {
  const at = key.indexOf(":");
  return [key.slice(0, at), key.slice(at + 1)];
}

/** The conversation a message belongs to, from the caller's side. */
export function keyOfMessage(msg) {
  if (msg.room_id) return `room:${msg.room_id}`;
  if (msg.recipient) {
    const peer = msg.sender === state.me.username ? msg.recipient : msg.sender;
    return `dm:${peer}`;
  }
  return "global";
}

export function currentConversation() {
  return conversation(state.current);
}

/** The message with this id in any conversation, or null. */
export function findMessage(id) {
  for (const conv of state.conversations.values()) {
    const msg = conv.messages.get(id);
    if (msg) return { conv, msg };
  }
  return null;
}
