// The HTTP API: relative paths (the client works wherever the API is
// mounted) and the HttpOnly `jwt_token` cookie (the script never sees the
// token).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "http_error";
  }
}

let unauthorized = () => {};

/** What to do when a call outside api/auth/ finds the session gone. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** Calls the API (relative path, cookie auth); JSON body and response. */
export async function api(method, path, body) {
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
    if (res.status === 401 && !path.startsWith("api/auth/")) unauthorized();
    throw err;
  }
  return { data, link: res.headers.get("Link") };
}

/**
 * The `before=` cursor of the Link header: the link to older items
 * (`rel="prev"` of a message list, `rel="next"` of a list that runs newest
 * first), or null.
 */
export function olderCursorFrom(link) {
  if (!link) return null;
  for (const part of link.split(",")) {
    const m = part.match(/<([^>]*)>/);
    const before = m && new URLSearchParams(m[1].split("?")[1] || "").get("before");
    if (before) return before;
  }
  return null;
}
