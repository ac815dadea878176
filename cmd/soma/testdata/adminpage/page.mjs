// Drives Soma's live admin page in headless Chromium as an operator would:
// sign in (a non-admin is turned away), watch rooms appear and rank by load
// while a client sends, open a room's detail, see an injected fault show up
// as a restart with its reason, watch idle rooms passivate and vanish, sign
// out. Run by cmd/soma/adminpage_test.go, which starts the server; every
// wait is bounded and every failure exits non-zero with what the page showed.
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env("SOMA_URL");
const userToken = env("USER_TOKEN");
const shots = process.env.SCREENSHOT_DIR;
const waitMillis = 60_000;

const log = (msg) => console.log("adminpage: " + msg);

async function api(method, path, token, body) {
  const resp = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${JSON.stringify(data)}`);
  return data;
}

async function createRoom(name) {
  return (await api("POST", "/_matrix/client/v3/createRoom", userToken, { name })).room_id;
}

let txn = 0;
async function send(roomID, n, parallel) {
  const one = () => api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomID)}/send/m.room.message/t${++txn}`,
    userToken, { msgtype: "m.text", body: "load " + txn });
  const chains = Array.from({ length: parallel }, async (_, i) => {
    for (let k = i; k < n; k += parallel) await one();
  });
  await Promise.all(chains);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
page.setDefaultTimeout(waitMillis);
const consoleErrors = [];
// Chromium logs every non-2xx fetch ("Failed to load resource"); the test
// expects some (a 403 for the non-admin, 404s for passivated rooms).
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(String(e)));

const row = (roomID) => page.locator(`#rooms-body tr[data-room-id="${roomID}"]`);
const cell = (roomID, name) => row(roomID).locator("td." + name);
const field = (name) => page.locator(`#detail-fields dd[data-field="${name}"]`);

// waitFor polls check until it returns true; on timeout it fails naming what.
async function waitFor(what, check) {
  const deadline = Date.now() + waitMillis;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}` + (last ? ` (last error: ${last.message})` : ""));
}

async function signIn(user, password) {
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
}

try {
  await page.goto(base + "/_soma/admin/");
  await page.locator("#login-form").waitFor({ state: "visible" });
  log("the page asks for a sign-in");

  await signIn(env("USER_NAME"), env("USER_PASSWORD"));
  await waitFor("a non-admin to be refused", async () =>
    (await page.textContent("#login-error")).includes("not a server admin") && await page.isVisible("#login-form"));
  log("a non-admin account is refused");

  await signIn(env("ADMIN_USER"), env("ADMIN_PASSWORD"));
  await page.locator("#rooms-view").waitFor({ state: "visible" });
  await waitFor("the status line", async () => (await page.textContent("#status")).includes("active room actor"));
  log("signed in as " + await page.textContent("#whoami"));

  // Load arrives after the page is open: the table must update by itself.
  const hot = await createRoom("hot");
  const warm = await createRoom("warm");
  await Promise.all([send(hot, 80, 8), send(warm, 5, 1)]);
  await waitFor("the hot room ranked first with its 80+ events", async () => {
    const first = await page.locator("#rooms-body tr").first().getAttribute("data-room-id");
    return first === hot && Number(await cell(hot, "events-last-minute").textContent()) >= 80;
  });
  await waitFor("the warm room listed", async () => Number(await cell(warm, "events-last-minute").textContent()) >= 5);
  const rate = Number(await cell(hot, "events-per-second").textContent());
  if (!(rate > 0)) throw new Error("the hot room shows events/s " + rate);
  log(`both rooms appeared without a reload, hottest first (${rate} events/s)`);
  if (shots) await page.screenshot({ path: shots + "/rooms.png", fullPage: true });

  await row(hot).click();
  await page.locator("#detail").waitFor({ state: "visible" });
  await waitFor("the room's detail, answered by its actor", async () =>
    (await field("joined members").textContent()) === "1" &&
    (await field("answered by the actor").textContent()).endsWith(" ms") &&
    (await field("extremity IDs").textContent()).startsWith("$"));
  log("the room's detail shows what its actor answered");

  if (process.env.FAULT_INJECTION === "true") {
    const adminToken = await page.evaluate(() => sessionStorage.getItem("soma-admin-token"));
    await api("POST", `/_soma/admin/v1/rooms/${encodeURIComponent(hot)}/fault`, adminToken, { reason: "browser test" });
    await waitFor("the restart and its reason", async () =>
      (await cell(hot, "restarts").textContent()) === "1" &&
      (await row(hot).getAttribute("class") || "").includes("restarted") &&
      (await field("last restart").textContent()).includes("injected fault: browser test"));
    await send(hot, 3, 1); // the restarted actor reloaded the room and takes sends
    log("an injected panic shows as a restart with its reason; the room still takes sends");
    if (shots) await page.screenshot({ path: shots + "/restart.png", fullPage: true });
  }

  // Idle rooms passivate: their rows go, and the open detail says so.
  await waitFor("idle rooms to passivate and leave the table", async () =>
    await row(hot).count() === 0 && await row(warm).count() === 0);
  await waitFor("the detail to say the room is passivated", async () =>
    (await page.textContent("#detail-error")).includes("passivated"));
  log("idle rooms passivated and left the page");

  await page.click("#logout");
  await page.locator("#login-form").waitFor({ state: "visible" });
  log("signed out");

  if (consoleErrors.length) throw new Error("the page logged errors: " + consoleErrors.join(" | "));
} catch (err) {
  console.error("adminpage: FAILED: " + err.message);
  try {
    console.error("adminpage: status line: " + await page.textContent("#status"));
    console.error("adminpage: table: " + (await page.textContent("#rooms")).replace(/\s+/g, " ").slice(0, 2000));
    console.error("adminpage: errors shown: " + [await page.textContent("#login-error"),
      await page.textContent("#rooms-error"), await page.textContent("#detail-error")].join(" | "));
    if (consoleErrors.length) console.error("adminpage: console: " + consoleErrors.join(" | "));
    if (shots) await page.screenshot({ path: shots + "/failure.png", fullPage: true });
  } catch (_) { /* the page is gone */ }
  process.exitCode = 1;
} finally {
  await browser.close();
}
