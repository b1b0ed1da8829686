// End-to-end test of the browser client, the way two people use it: the
// real chat-server binary, Debian's Chromium driven by playwright-core, two
// browser contexts (two people, two cookie jars) chatting globally, directly
// and in a room, editing, deleting (a room's creator any message of it),
// reacting and replying in threads (a long one read page by page), unread
// badges and read markers across tabs and devices with "Seen" receipts, one
// of them dropping off the network and coming back. Then two instances on
// PostgreSQL and a private Redis that is killed while one person writes:
// the other's page is told to resync (close 4001) and shows what it missed.
//
//   CHAT_SERVER_BIN=target/debug/chat-server node --test e2e/chat.spec.mjs
//
// Environment: CHAT_SERVER_BIN (required), CHROMIUM_BIN (/usr/bin/chromium),
// E2E_TIMEOUT_MS (per wait, 10000), TEST_DATABASE_URL (an admin URL of the
// PostgreSQL server; postgres://postgres@127.0.0.1:5432/postgres), and
// redis-server and psql on PATH (scripts/test.sh provides them). On a failed
// step, screenshots of the pages and the server logs go to e2e/artifacts/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, "artifacts");
const WAIT_MS = Number(process.env.E2E_TIMEOUT_MS || 10000);
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const PASSWORD = "correct horse battery";

// ------------------------------------------------------------------ server

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Starts chat-server on a free loopback port, in-memory store unless `vars` name others. */
async function startServer(vars = {}) {
  const bin = process.env.CHAT_SERVER_BIN;
  assert.ok(bin, "set CHAT_SERVER_BIN to the chat-server binary");
  const port = await freePort();
  // An empty working directory, so that no .env picks a database.
  const cwd = mkdtempSync(join(tmpdir(), "chat-e2e-"));
  const env = { ...process.env };
  for (const name of ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_URL"]) {
    delete env[name];
  }
  Object.assign(env, {
    PORT: String(port),
    ENVIRONMENT: "development",
    BCRYPT_COST: "4",
    AUTH_RATE_LIMIT: "0",
    // The history test seeds pages of messages in one burst.
    MESSAGE_RATE_LIMIT: "0",
    JWT_SECRET: randomBytes(32).toString("hex"),
    LOG_LEVEL: "warn",
    ...vars,
  });
  const child = spawn(resolve(bin), [], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  child.stdout.on("data", (d) => log.push(d.toString()));
  child.stderr.on("data", (d) => log.push(d.toString()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`chat-server exited:\n${log.join("")}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`chat-server did not start:\n${log.join("")}`);
    await sleep(200);
  }
  const stop = () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    rmSync(cwd, { recursive: true, force: true });
  };
  return { base, log, stop };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A private redis-server on `port` that keeps nothing; resolves once it answers. */
async function startRedis(port) {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    const answers = await new Promise((done) => {
      const socket = new Socket();
      socket.setTimeout(500);
      socket.once("error", () => done(false));
      socket.once("timeout", () => {
        socket.destroy();
        done(false);
      });
      socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
      socket.once("data", (data) => {
        socket.destroy();
        done(data.toString().startsWith("+PONG"));
      });
    });
    if (answers) return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
    await sleep(50);
  }
}

/** A fresh PostgreSQL database (psql on the admin URL); its URL, and a function that drops it. */
function createDatabase() {
  const admin = process.env.TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `chat_e2e_${randomBytes(6).toString("hex")}`;
  const psql = (sql) => {
    const run = spawnSync("psql", [admin, "-v", "ON_ERROR_STOP=1", "-qc", sql], { encoding: "utf8" });
    if (run.status !== 0) throw new Error(`psql ${sql}: ${run.stderr}`);
  };
  psql(`CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

// ----------------------------------------------------------------- helpers

/** One person: a browser context, its page, what the page did. */
async function person(browser, base, name, viewport) {
  const context = await browser.newContext({ viewport });
  return tab(context, base, name);
}

/** A page of a person's browser context (a first tab, or another one sharing its cookie). */
async function tab(context, base, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const p = { name, context, page, dialogs: [], errors: [], cspViolations: [], sockets: [] };
  page.on("dialog", (d) => {
    p.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => p.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) p.cspViolations.push(m.text());
  });
  page.on("websocket", (ws) => p.sockets.push(ws.url()));
  await page.goto(base);
  return p;
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** POSTs JSON from `page` (with its session cookie); answers the body. */
function postFrom(page, path, body) {
  return page.evaluate(
    async ([path, body]) => {
      const res = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
      return res.json();
    },
    [path, body],
  );
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}

/** The message bodies of the open conversation, in order. */
async function messageTexts(page) {
  return byTestId(page, "message-list").locator('[data-testid="message-content"]').allTextContents();
}

function messageLocator(page, text) {
  return byTestId(page, "message-list").locator('[data-testid="message-content"]', { hasText: exactly(text) });
}

async function seesMessage(p, text) {
  await messageLocator(p.page, text).first().waitFor();
}

async function connected(p) {
  await p.page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
}

async function say(p, text) {
  await byTestId(p.page, "composer").fill(text);
  await byTestId(p.page, "send").click();
  await seesMessage(p, text);
}

async function open(p, kind, label) {
  if (kind === "global") return byTestId(p.page, "conv-global").click();
  // By name: the button also holds the unread count.
  const name = p.page.locator('[data-testid="conv-name"]', { hasText: exactly(label) });
  await p.page.locator(`[data-testid="${kind}-item"]`, { has: name }).click();
}

/** The id of the message of the open conversation with this text. */
async function idOf(p, text) {
  const item = byTestId(p.page, "message-list").locator('[data-testid="message"]', {
    has: p.page.locator('[data-testid="message-content"]', { hasText: exactly(text) }),
  });
  await item.first().waitFor();
  return item.first().getAttribute("data-id");
}

/** A message by id, in the conversation (or in the open thread). */
function messageById(page, id, list = "message-list") {
  return byTestId(page, list).locator(`[data-testid="message"][data-id="${id}"]`);
}

/** Waits until a message shows this text (its current state). */
async function showsContent(p, id, text, list) {
  await messageById(p.page, id, list).locator('[data-testid="message-content"]', { hasText: exactly(text) }).waitFor();
}

function reaction(page, id, emoji, list) {
  return messageById(page, id, list).locator(`[data-testid="reaction"][data-emoji="${emoji}"]`);
}

/** The unread badge of a direct conversation in the list. */
function dmBadge(p, username) {
  return p.page.locator(`[data-testid="dm-item"][data-username="${username}"] [data-testid="unread"]`);
}

async function openDirect(p, username) {
  await byTestId(p.page, "dm-user").fill(username);
  await byTestId(p.page, "dm-open").click();
  await byTestId(p.page, "conv-title").filter({ hasText: `Direct: ${username}` }).waitFor();
}

async function register(p) {
  await byTestId(p.page, "auth-view").waitFor();
  await byTestId(p.page, "auth-username").fill(p.name);
  await byTestId(p.page, "auth-email").fill(`${p.name}@example.com`);
  await byTestId(p.page, "auth-password").fill(PASSWORD);
  await byTestId(p.page, "register").click();
  await byTestId(p.page, "me").filter({ hasText: exactly(p.name) }).waitFor();
  await connected(p);
}

// -------------------------------------------------------------------- test

test("two people chat in the browser client", { timeout: 120000 }, async (t) => {
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives every launch a fresh, temporary user-data-dir.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  let alice;
  let bob;
  let failed = false;

  /** A sub-test that leaves screenshots and the server log when it fails. */
  const step = (name, body) =>
    t.test(name, async () => {
      try {
        await body();
      } catch (err) {
        failed = true;
        mkdirSync(ARTIFACTS, { recursive: true });
        const slug = name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
        for (const p of [alice, bob]) {
          if (p) await p.page.screenshot({ path: join(ARTIFACTS, `${slug}-${p.name}.png`), fullPage: true }).catch(() => {});
        }
        writeFileSync(join(ARTIFACTS, "server.log"), server.log.join(""));
        throw err;
      }
    });

  try {
    alice = await person(browser, server.base, "alice", { width: 1200, height: 800 });
    // Bob is on a phone-sized screen: the narrow layout must work too.
    bob = await person(browser, server.base, "bob", { width: 390, height: 844 });

    await step("both register through the page and connect", async () => {
      await register(alice);
      await register(bob);
    });

    await step("each follows whom they show: bob sees alice online, alice sees bob once she opens a direct conversation", async () => {
      // Bob came second: alice is in his first list of who is online.
      await byTestId(bob.page, "online-list").locator('[data-username="alice"]').waitFor();
      // Bob came after alice read hers; a direct conversation follows him.
      await openDirect(alice, "bob");
      await byTestId(alice.page, "online-list").locator('[data-username="bob"]').waitFor();
      await open(alice, "global");
    });

    await step("global messages appear live on both sides", async () => {
      await say(alice, "Hello everyone, alice here");
      await seesMessage(bob, "Hello everyone, alice here");
      await say(bob, "Hi alice, bob here");
      await seesMessage(alice, "Hi alice, bob here");
    });

    await step("direct messages, with bob seeing alice typing", async () => {
      await openDirect(bob, "alice");
      await openDirect(alice, "bob");
      await byTestId(alice.page, "composer").pressSequentially("psst", { delay: 30 });
      await byTestId(bob.page, "typing").filter({ hasText: "alice is typing" }).waitFor();
      await say(alice, "psst, bob: a direct one");
      await seesMessage(bob, "psst, bob: a direct one");
      await say(bob, "got it, alice");
      await seesMessage(alice, "got it, alice");
      // A direct message stays out of the global feed.
      await open(bob, "global");
      await seesMessage(bob, "Hello everyone, alice here");
      assert.equal(await messageLocator(bob.page, "psst, bob: a direct one").count(), 0);
    });

    await step("unread: a badge on a conversation not open, cleared on alice's other tab once she reads, and bob sees Seen", async () => {
      const second = await tab(alice.context, server.base, "alice (second tab)");
      try {
        await connected(second);
        await open(alice, "global");
        await open(bob, "dm", "alice");
        // Everything so far was read while open: no badge anywhere (the
        // second tab may have loaded its list before alice's last read
        // landed: the read frame, live or replayed, follows).
        await second.page.locator('[data-testid="dm-item"][data-username="bob"]').waitFor();
        await dmBadge(alice, "bob").waitFor({ state: "detached" });
        await dmBadge(second, "bob").waitFor({ state: "detached" });

        await say(bob, "are you there, alice?");
        const asked = await idOf(bob, "are you there, alice?");
        for (const p of [alice, second]) await dmBadge(p, "bob").filter({ hasText: exactly("1") }).waitFor();
        // The tab's title counts what is unread, for a tab in the background.
        await second.page.waitForFunction(() => document.title === "(1) Chat");
        await sleep(500);
        assert.equal(await messageById(bob.page, asked).locator('[data-testid="seen"]').count(), 0, "not seen before alice reads");

        await open(alice, "dm", "bob");
        await seesMessage(alice, "are you there, alice?");
        await dmBadge(alice, "bob").waitFor({ state: "detached" });
        // The read on the first tab clears the badge on the second.
        await dmBadge(second, "bob").waitFor({ state: "detached" });
        await second.page.waitForFunction(() => document.title === "Chat");
        // Bob gets the receipt.
        await messageById(bob.page, asked).locator('[data-testid="seen"]').waitFor();
        assert.equal(await byTestId(bob.page, "message-list").locator('[data-testid="seen"]').count(), 1, "one Seen, under the last one read");
        // The newest activity is at the top of the list.
        for (const p of [alice, second]) {
          const first = p.page.locator(".sidebar button.conv").first();
          assert.equal(await first.getAttribute("data-conv"), "dm:bob", `${p.name}: most recent activity first`);
        }
        // After a reload, the list tells where alice's marker stands.
        await bob.page.reload();
        await connected(bob);
        await open(bob, "dm", "alice");
        await messageById(bob.page, asked).locator('[data-testid="seen"]').waitFor();
        // The marker is the server's: a fresh load of the second tab shows no badge either.
        await second.page.reload();
        await connected(second);
        await second.page.locator('[data-testid="dm-item"][data-username="bob"]').waitFor();
        assert.equal(await dmBadge(second, "bob").count(), 0, "read for good");
        assert.deepEqual(second.errors, [], "no script error on the second tab");
      } finally {
        await second.page.close();
      }
    });

    await step("a read on bob's other device while his page is offline: the badge it counted on reconnect goes again", async () => {
      const phone = await person(browser, server.base, "bob (phone)", { width: 390, height: 844 });
      try {
        await byTestId(phone.page, "auth-username").fill("bob");
        await byTestId(phone.page, "auth-password").fill(PASSWORD);
        await byTestId(phone.page, "login").click();
        await connected(phone);
        await open(bob, "global");
        await connected(bob);
        await bob.context.setOffline(true);
        await bob.page.locator('[data-testid="connection-status"][data-state="offline"]').waitFor();
        await open(alice, "dm", "bob");
        await say(alice, "read this on your phone");
        await open(phone, "dm", "alice");
        await seesMessage(phone, "read this on your phone");
        await dmBadge(phone, "alice").waitFor({ state: "detached" });
        await messageById(alice.page, await idOf(alice, "read this on your phone")).locator('[data-testid="seen"]').waitFor();
        // Back online, bob's page replays the message and then the read.
        await bob.context.setOffline(false);
        await connected(bob);
        await bob.page.locator('[data-testid="dm-item"][data-username="alice"]').waitFor();
        await sleep(1000);
        assert.equal(await dmBadge(bob, "alice").count(), 0, "read on the phone");
        assert.deepEqual(phone.errors, [], "no script error on the phone");
      } finally {
        await bob.context.setOffline(false);
        await phone.context.close();
      }
    });

    await step("alice creates a room, adds bob, and they talk there", async () => {
      await byTestId(alice.page, "room-name").fill("Team");
      await byTestId(alice.page, "room-create").click();
      await byTestId(alice.page, "conv-title").filter({ hasText: exactly("Team") }).waitFor();
      await byTestId(alice.page, "member-name").fill("bob");
      await byTestId(alice.page, "member-add").click();
      await byTestId(alice.page, "notice").filter({ hasText: "bob was added to Team" }).waitFor();
      await say(alice, "Welcome to Team, bob");
      // Bob learns of the room from its first message.
      await open(bob, "room", "Team");
      await seesMessage(bob, "Welcome to Team, bob");
      await say(bob, "Thanks for the invite");
      await seesMessage(alice, "Thanks for the invite");
    });

    await step("a message with HTML in it shows as text", async () => {
      const evil = "<img src=x onerror=alert(1)>";
      await open(alice, "global");
      await say(alice, evil);
      await open(bob, "global");
      await seesMessage(bob, evil);
      for (const p of [alice, bob]) {
        const texts = await messageTexts(p.page);
        assert.ok(texts.includes(evil), `${p.name} shows the text`);
        assert.equal(await byTestId(p.page, "message-list").locator("img").count(), 0);
        assert.equal(await p.page.locator("img").count(), 0);
      }
      await sleep(300); // an onerror would have fired by now
      assert.deepEqual(alice.dialogs, []);
      assert.deepEqual(bob.dialogs, []);
    });

    await step("history pages back with Load older", async () => {
      // Sixty messages in a new room, sent through the API from alice's page
      // (her cookie), then seen after a reload.
      const room = await postFrom(alice.page, "api/rooms", { name: "History" });
      for (let i = 1; i <= 60; i++) await postFrom(alice.page, "api/messages", { room_id: room.id, content: `history ${i}` });
      await alice.page.reload();
      await connected(alice);
      await open(alice, "room", "History");
      await seesMessage(alice, "history 60");
      let texts = await messageTexts(alice.page);
      assert.equal(texts.length, 50);
      assert.equal(texts[0], "history 11");
      await byTestId(alice.page, "load-older").click();
      await seesMessage(alice, "history 1");
      texts = await messageTexts(alice.page);
      assert.deepEqual(
        texts,
        Array.from({ length: 60 }, (_, i) => `history ${i + 1}`),
      );
      assert.ok(await byTestId(alice.page, "load-older").isHidden());
      await open(alice, "global");
    });

    await step("alice, who created the room, deletes bob's message there; both see the tombstone live", async () => {
      // Since the reload alice's page knows the room from the conversation
      // list, which does not name its creator.
      await open(bob, "room", "Team");
      await say(bob, "bob's message for the creator to delete");
      const target = await idOf(bob, "bob's message for the creator to delete");
      const welcome = await idOf(bob, "Welcome to Team, bob");
      await open(alice, "room", "Team");
      await seesMessage(alice, "bob's message for the creator to delete");
      // Deleting, never editing, someone else's message; bob created nothing.
      const remove = messageById(alice.page, target).getByRole("button", { name: "Delete message" });
      await remove.waitFor();
      assert.equal(await messageById(alice.page, target).locator('[data-testid="message-edit"]').count(), 0);
      assert.equal(await messageById(bob.page, welcome).locator('[data-testid="message-delete"]').count(), 0);
      await remove.click();
      for (const p of [alice, bob]) await showsContent(p, target, "This message was deleted");
      assert.equal(await messageById(alice.page, target).locator('[data-testid="message-delete"]').count(), 0);
      await open(alice, "global");
      await open(bob, "global");
    });

    await step("a thread longer than a page: the panel reads it back page by page and shows every reply", async () => {
      // More replies than the client asks for in one page of a thread,
      // posted through the API from alice's page.
      const replies = 205;
      const room = await postFrom(alice.page, "api/rooms", { name: "Long thread" });
      const root = await postFrom(alice.page, "api/messages", { room_id: room.id, content: "a long thread" });
      for (let i = 1; i <= replies; i++) {
        await postFrom(alice.page, "api/messages", { room_id: room.id, reply_to: root.id, content: `reply ${i}` });
      }
      // Alice's page got them all live (and history pages hold replies
      // too, back to their root), so the thread shows them either way:
      // what tells is that the panel follows the thread's own cursor back
      // to its start.
      const pages = [];
      const onRequest = (request) => {
        if (/\/replies\?/.test(request.url())) pages.push(new URL(request.url()).searchParams.get("before"));
      };
      alice.page.on("request", onRequest);
      try {
        await open(alice, "room", "Long thread");
        const root = await idOf(alice, "a long thread");
        const earlier = alice.page.waitForResponse((res) => /\/replies\?.*before=/.test(res.url()));
        await messageById(alice.page, root).locator(`[data-testid="thread-open"][data-count="${replies}"]`).click();
        const thread = byTestId(alice.page, "thread-messages");
        await thread.getByText(`reply ${replies}`, { exact: true }).waitFor();
        await earlier;
        const expected = ["a long thread", ...Array.from({ length: replies }, (_, i) => `reply ${i + 1}`)];
        assert.deepEqual(await thread.locator('[data-testid="message-content"]').allTextContents(), expected);
        // A reply sent now still goes last.
        await byTestId(alice.page, "thread-input").fill("a live reply");
        await byTestId(alice.page, "thread-send").click();
        await thread.getByText("a live reply", { exact: true }).waitFor();
        assert.deepEqual(await thread.locator('[data-testid="message-content"]').allTextContents(), [...expected, "a live reply"]);
        // By now a third page would have been asked for.
        assert.equal(pages.length, 2, `the newest page, then the one before it: ${pages.join(", ")}`);
        assert.equal(pages[0], null);
        assert.ok(pages[1]);
      } finally {
        alice.page.off("request", onRequest);
      }
      await byTestId(alice.page, "thread-close").click();
      await open(alice, "global");
    });

    await step("bob drops off the network, comes back and sees exactly what he missed", async () => {
      await open(bob, "global");
      await connected(bob);
      const socketsBefore = bob.sockets.length;
      await bob.context.setOffline(true);
      await bob.page.locator('[data-testid="connection-status"][data-state="offline"]').waitFor();
      const missed = ["missed one", "missed two", "missed three"];
      for (const text of missed) await say(alice, text);
      await sleep(500);
      for (const text of missed) {
        assert.equal(await messageLocator(bob.page, text).count(), 0, `bob is offline and cannot see "${text}" yet`);
      }
      await bob.context.setOffline(false);
      await connected(bob);
      const reconnects = bob.sockets.slice(socketsBefore);
      assert.ok(reconnects.length >= 1, "bob's client opened a new socket");
      const since = new URL(reconnects[reconnects.length - 1]).searchParams.get("since");
      assert.ok(since, `the reconnect asks for what was missed (?since=): ${reconnects.join(", ")}`);
      for (const text of missed) await seesMessage(bob, text);
      // The online dots are right again on both sides.
      await byTestId(bob.page, "online-list").locator('[data-username="alice"]').waitFor();
      await byTestId(alice.page, "online-list").locator('[data-username="bob"]').waitFor();
      await sleep(1000); // late duplicates would show up by now
      const texts = await messageTexts(bob.page);
      for (const text of missed) {
        assert.equal(texts.filter((x) => x === text).length, 1, `"${text}" shows exactly once`);
      }
      const at = missed.map((text) => texts.indexOf(text));
      assert.deepEqual([...at].sort((a, b) => a - b), at, "in the order they were sent");
    });

    let edited;
    let deleted;
    let root;
    await step("alice edits, deletes, reacts and bob replies in a thread: each shows live on the other side", async () => {
      await open(alice, "global");
      await open(bob, "global");
      for (const text of ["to be edited", "to be deleted", "a thread starts here"]) {
        await say(alice, text);
        await seesMessage(bob, text);
      }
      edited = await idOf(alice, "to be edited");
      deleted = await idOf(alice, "to be deleted");
      root = await idOf(alice, "a thread starts here");
      // Only one's own messages offer Edit and Delete.
      assert.equal(await messageById(bob.page, edited).locator('[data-testid="message-edit"]').count(), 0);

      await messageById(alice.page, edited).getByRole("button", { name: "Edit message" }).click();
      const input = messageById(alice.page, edited).locator('[data-testid="edit-input"]');
      await input.fill("edited, live");
      await messageById(alice.page, edited).getByRole("button", { name: "Save" }).click();
      await showsContent(bob, edited, "edited, live");
      await messageById(bob.page, edited).locator('[data-testid="message-edited"]').waitFor();

      await messageById(alice.page, deleted).getByRole("button", { name: "Delete message" }).click();
      await showsContent(bob, deleted, "This message was deleted");
      assert.equal(await messageLocator(bob.page, "to be deleted").count(), 0, "the text is gone");
      assert.equal(await reaction(bob.page, deleted, "👍").count(), 0, "a deleted message takes no reactions");

      await reaction(alice.page, root, "👍").click();
      await reaction(bob.page, root, "👍").and(bob.page.locator('[data-count="1"]')).waitFor();
      await reaction(alice.page, root, "👍").and(alice.page.locator('[aria-pressed="true"]')).waitFor();
      assert.equal(await reaction(bob.page, root, "👍").getAttribute("aria-pressed"), "false");
      // Bob adds his own and takes it back.
      await reaction(bob.page, root, "🎉").click();
      await reaction(alice.page, root, "🎉").and(alice.page.locator('[data-count="1"]')).waitFor();
      await reaction(bob.page, root, "🎉").and(bob.page.locator('[aria-pressed="true"]')).waitFor();
      await reaction(bob.page, root, "🎉").click();
      await reaction(alice.page, root, "🎉").and(alice.page.locator('[data-count="0"]')).waitFor();

      await messageById(bob.page, root).getByRole("button", { name: "Reply in thread" }).click();
      await byTestId(bob.page, "thread-panel").waitFor();
      await showsContent(bob, root, "a thread starts here", "thread-messages");
      await byTestId(bob.page, "thread-input").fill("a reply from bob");
      await byTestId(bob.page, "thread-send").click();
      await byTestId(bob.page, "thread-messages").getByText("a reply from bob", { exact: true }).waitFor();
      // The reply lives in the thread, not in the conversation.
      assert.equal(await messageLocator(bob.page, "a reply from bob").count(), 0);
      await messageById(alice.page, root).locator('[data-testid="thread-open"][data-count="1"]').waitFor();
      await messageById(alice.page, root).locator('[data-testid="thread-open"]').click();
      await byTestId(alice.page, "thread-messages").getByText("a reply from bob", { exact: true }).waitFor();
      await byTestId(bob.page, "thread-close").click();
    });

    await step("bob is away while alice changes things; he reconnects from his last cursor and catches up", async () => {
      await connected(bob);
      const socketsBefore = bob.sockets.length;
      await bob.context.setOffline(true);
      await bob.page.locator('[data-testid="connection-status"][data-state="offline"]').waitFor();

      await messageById(alice.page, edited).getByRole("button", { name: "Edit message" }).click();
      await messageById(alice.page, edited).locator('[data-testid="edit-input"]').fill("edited while bob was away");
      await messageById(alice.page, edited).getByRole("button", { name: "Save" }).click();
      await showsContent(alice, edited, "edited while bob was away");
      await reaction(alice.page, root, "❤️").click();
      await reaction(alice.page, root, "❤️").and(alice.page.locator('[data-count="1"]')).waitFor();
      await byTestId(alice.page, "thread-input").fill("a reply from alice");
      await byTestId(alice.page, "thread-send").click();
      await byTestId(alice.page, "thread-messages").getByText("a reply from alice", { exact: true }).waitFor();
      await messageById(alice.page, root).getByRole("button", { name: "Delete message" }).click();
      await showsContent(alice, root, "This message was deleted");
      await say(alice, "said while bob was away");
      await sleep(300);
      await showsContent(bob, edited, "edited, live");

      await bob.context.setOffline(false);
      await connected(bob);
      const reconnects = bob.sockets.slice(socketsBefore);
      const since = new URL(reconnects[reconnects.length - 1]).searchParams.get("since");
      assert.ok(since && !/^[0-9a-f]{8}-/.test(since), `the reconnect resumes from a cursor, not a message id: ${since}`);
      await showsContent(bob, edited, "edited while bob was away");
      await showsContent(bob, root, "This message was deleted");
      await messageById(bob.page, root).locator('[data-testid="thread-open"][data-count="2"]').waitFor();
      await seesMessage(bob, "said while bob was away");
      await sleep(500); // late duplicates would show up by now
      const texts = await messageTexts(bob.page);
      assert.equal(texts.filter((x) => x === "said while bob was away").length, 1);
      await messageById(bob.page, root).locator('[data-testid="thread-open"]').click();
      const thread = byTestId(bob.page, "thread-messages");
      await thread.getByText("a reply from alice", { exact: true }).waitFor();
      assert.deepEqual(
        await thread.locator('[data-testid="message-content"]').allTextContents(),
        ["This message was deleted", "a reply from bob", "a reply from alice"],
      );
      await byTestId(bob.page, "thread-close").click();
      await byTestId(alice.page, "thread-close").click();
    });

    await step("alice logs out and back in and finds her history", async () => {
      await byTestId(alice.page, "logout").click();
      await byTestId(alice.page, "auth-view").waitFor();
      // Bob follows alice (their direct conversation): she went offline.
      await byTestId(bob.page, "online-list").locator('[data-username="alice"]').waitFor({ state: "detached" });
      const profile = await alice.page.evaluate(async () => (await fetch("api/auth/profile")).status);
      assert.equal(profile, 401);
      await byTestId(alice.page, "auth-username").fill("alice");
      await byTestId(alice.page, "auth-password").fill(PASSWORD);
      await byTestId(alice.page, "login").click();
      await connected(alice);
      await seesMessage(alice, "Hi alice, bob here");
    });

    await step("no script error, no policy violation", async () => {
      for (const p of [alice, bob]) {
        assert.deepEqual(p.errors, [], `${p.name}: uncaught errors`);
        assert.deepEqual(p.cspViolations, [], `${p.name}: Content-Security-Policy violations`);
        const banner = (await byTestId(p.page, "error").textContent()) || "";
        assert.doesNotMatch(banner, /conversations|mark the conversation/, `${p.name}: read state worked throughout`);
      }
    });
  } finally {
    if (failed) {
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(join(ARTIFACTS, "server.log"), server.log.join(""));
    }
    await browser.close().catch(() => {});
    server.stop();
  }
});

test("a Redis blip: the page that missed messages resyncs and shows them", { timeout: 120000 }, async (t) => {
  const database = createDatabase();
  const redisPort = await freePort();
  let redis = await startRedis(redisPort);
  // Two instances of one deployment; a gap of more than two messages is
  // not filled in but closed with 4001, which the page acts on.
  const shared = {
    DATABASE_URL: database.url,
    DB_POOL_SIZE: "4",
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    REDIS_PREFIX: `e2e-${randomBytes(6).toString("hex")}`,
    REDIS_PRESENCE_HEARTBEAT: "300ms",
    REDIS_PRESENCE_TTL: "1200ms",
    JWT_SECRET: randomBytes(32).toString("hex"),
    WEBSOCKET_REPLAY_LIMIT: "2",
  };
  const a = await startServer(shared);
  let b;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  let bob;
  try {
    // Alice writes through instance A's API.
    const api = async (method, path, body, token) => {
      const res = await fetch(`${a.base}/${path}`, {
        method,
        headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: body && JSON.stringify(body),
      });
      assert.ok(res.ok, `${method} ${path}: ${res.status}`);
      return res.json();
    };
    await api("POST", "api/auth/register", { username: "alice", email: "alice@example.com", password: PASSWORD });
    const { token } = await api("POST", "api/auth/login", { username: "alice", password: PASSWORD });
    await api("POST", "api/messages", { content: "before the blip" }, token);
    // B starts after it: a gap on B starts where the store stood then.
    b = await startServer(shared);
    bob = await person(browser, b.base, "bob", { width: 1200, height: 800 });
    await register(bob);
    await seesMessage(bob, "before the blip");

    await t.test("bob's page gets the messages sent while Redis was down, once and in order", async () => {
      const socketsBefore = bob.sockets.length;
      redis.kill("SIGKILL");
      const missed = ["while down one", "while down two", "while down three"];
      for (const content of missed) await api("POST", "api/messages", { content }, token);
      // Bob writes too, on his own instance: his page shows it at once,
      // and its cursor lies past the three it has not got.
      await say(bob, "bob while down");
      for (const instance of [a, b]) {
        for (;;) {
          const health = await (await fetch(`${instance.base}/health`)).json();
          if (health.realtime === "degraded") break;
          await sleep(50);
        }
      }
      redis = await startRedis(redisPort);
      for (const text of missed) await seesMessage(bob, text);
      await connected(bob);
      // Three missed, over the limit of two: closed with 4001, and the
      // page reconnected with the cursor the close named (where B's store
      // stood when it started), not its own last one (bob's message, past
      // the three: resuming from it would have skipped them), and went on
      // from the cursor the truncated replay named.
      const reconnects = bob.sockets.slice(socketsBefore);
      assert.ok(reconnects.length >= 1, "the page opened a new socket after the 4001");
      const since = new URL(reconnects[0]).searchParams.get("since");
      assert.match(since || "", /^[0-9]+$/, `resumed from the cursor the server named: ${reconnects.join(", ")}`);
      await sleep(1000); // late duplicates would show up by now
      const texts = await messageTexts(bob.page);
      const all = ["before the blip", ...missed, "bob while down"];
      for (const text of all) assert.equal(texts.filter((x) => x === text).length, 1, `"${text}" shows exactly once`);
      const at = ["before the blip", ...missed].map((text) => texts.indexOf(text));
      assert.deepEqual([...at].sort((x, y) => x - y), at, "in the order they were sent");
      // Live again.
      await api("POST", "api/messages", { content: "after the blip" }, token);
      await seesMessage(bob, "after the blip");
      assert.deepEqual(bob.errors, [], "no script error");
    });
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    if (bob) await bob.page.screenshot({ path: join(ARTIFACTS, "blip-bob.png"), fullPage: true }).catch(() => {});
    writeFileSync(join(ARTIFACTS, "blip-a.log"), a.log.join(""));
    if (b) writeFileSync(join(ARTIFACTS, "blip-b.log"), b.log.join(""));
    throw err;
  } finally {
    await browser.close().catch(() => {});
    a.stop();
    if (b) b.stop();
    redis.kill("SIGKILL");
    await sleep(500);
    database.drop();
  }
});
