// Signing in and out, and keeping the session alive. Auth is the HttpOnly
// `jwt_token` cookie: the script never sees the token.

import { api, ApiError } from "./api.js";
import { $, setConnectionStatus, showError } from "./dom.js";
import { conversation, state } from "./state.js";
import { connect, disconnect } from "./connection.js";
import { closeThread, loadLatest, loadUserOptions, selectConversation } from "./conversations.js";
import { loadConversations } from "./unread.js";

const REFRESH_BEFORE_EXPIRY_S = 10 * 60;
const REFRESH_RETRY_MS = 5 * 60 * 1000;

export async function start() {
  try {
    const { data } = await api("GET", "api/auth/profile");
    await signedIn(data);
  } catch (err) {
    showAuth();
    if (!(err instanceof ApiError && err.status === 401)) showError(`The server did not answer: ${err.message}`);
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
  await Promise.allSettled([loadLatest(conversation("global")), loadConversations(), loadUserOptions()]);
  connect();
}

export async function authSubmit(register) {
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

export async function logout() {
  try {
    await api("POST", "api/auth/logout");
  } catch {
    // Logged out locally whatever the server said.
  }
  resetSession();
  showAuth();
}

export function sessionEnded() {
  if (!state.me) return;
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
  state.since = null;
  state.reloadOnConnect = false;
  state.current = "global";
  state.editing = null;
  closeThread();
  clearTimeout(state.readTimer);
  state.seen.clear();
  clearTimeout(state.listTimer);
  $("conv-list").replaceChildren();
  $("online-list").replaceChildren();
  $("messages").replaceChildren();
}
