// Building the page: every piece of text a user wrote goes in as text
// (textContent / text nodes), never parsed as HTML.

/** The element with this id; a missing one is a bug in index.html. */
export const $ = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
};

/**
 * Builds an element. `attrs` are set with setAttribute (never event
 * handler attributes); string children become text nodes.
 */
export function el(tag, attrs, ...children) {
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

export function showError(text) {
  const banner = $("error");
  banner.textContent = text;
  banner.hidden = !text;
}

export function setConnectionStatus(stateName, text) {
  const node = document.querySelector('[data-testid="connection-status"]');
  node.dataset.state = stateName;
  node.textContent = text;
}

let noticeTimer = null;

/** A short notice for screen readers and eyes, gone after a while. */
export function announce(text) {
  const notice = $("notice");
  notice.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.textContent = "";
  }, 5000);
}
