// Soma's live admin page: signs in with an admin account through the
// Client-Server login API, then polls the admin API every second and shows
// the hottest room actors. Plain JavaScript, no build step.
"use strict";

const api = "/_soma/admin/v1";
const pollMillis = 1000;
const tokenKey = "soma-admin-token";
const userKey = "soma-admin-user";

const $ = (id) => document.getElementById(id);
let timer = null;
let selectedRoom = null;

// call fetches a JSON API with the stored access token. A 401 forgets the
// token and shows the sign-in form again.
async function call(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await resp.json(); } catch (_) { /* an empty or non-JSON body */ }
  if (!resp.ok) {
    const err = new Error(data.error || resp.status + " " + resp.statusText);
    err.status = resp.status;
    err.errcode = data.errcode;
    if (resp.status === 401 && path !== "/_matrix/client/v3/login") signedOut("Your session ended: sign in again.");
    throw err;
  }
  return data;
}

function show(signedIn) {
  $("login-view").hidden = signedIn;
  $("rooms-view").hidden = !signedIn;
  $("session").hidden = !signedIn;
  $("whoami").textContent = signedIn ? sessionStorage.getItem(userKey) || "" : "";
}

function signedOut(message) {
  sessionStorage.removeItem(tokenKey);
  sessionStorage.removeItem(userKey);
  clearTimeout(timer);
  timer = null;
  $("login-error").textContent = message || "";
  show(false);
}

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const data = await call("POST", "/_matrix/client/v3/login", {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: $("login-user").value.trim() },
      password: $("login-password").value,
      initial_device_display_name: "Soma admin page",
    });
    sessionStorage.setItem(tokenKey, data.access_token);
    sessionStorage.setItem(userKey, data.user_id);
    $("login-password").value = "";
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout() {
  try { await call("POST", "/_matrix/client/v3/logout", {}); } catch (_) { /* signed out either way */ }
  signedOut("");
}

function start() {
  show(true);
  poll();
}

// poll refreshes the table (and the open room's detail), then schedules
// itself: one request at a time, however slow the server is.
async function poll() {
  clearTimeout(timer);
  if (!$("paused").checked) {
    await refreshRooms();
    if (selectedRoom) await refreshDetail();
  }
  if (sessionStorage.getItem(tokenKey)) timer = setTimeout(poll, pollMillis);
}

async function refreshRooms() {
  const q = new URLSearchParams({ sort: $("sort").value, limit: $("limit").value });
  try {
    const data = await call("GET", api + "/rooms?" + q);
    $("rooms-error").textContent = "";
    renderRooms(data);
  } catch (err) {
    if (err.status === 403) {
      signedOut("This account is not a server admin.");
      return;
    }
    $("rooms-error").textContent = "Could not refresh: " + err.message;
  }
}

const ms = (seconds) => (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1);
const fixed = (n, digits) => Number(n || 0).toFixed(digits);

function renderRooms(data) {
  const body = $("rooms-body");
  const rows = data.rooms.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.roomId = r.room_id;
    if (r.mailbox_depth >= 10) tr.classList.add("deep");
    if (r.restarts > 0) tr.classList.add("restarted");
    const cells = [
      ["room", r.room_id],
      ["events-per-second", fixed(r.events_per_second, 1)],
      ["events-last-minute", r.events_last_minute],
      ["mailbox", r.mailbox_depth],
      ["processed", r.messages_processed],
      ["latency", ms(r.message_latency.p50) + " / " + ms(r.message_latency.p99) + " ms"],
      ["commit", ms(r.commit_latency.p99) + " ms"],
      ["batch", fixed(r.batch_size.mean, 1)],
      ["members", r.joined_members],
      ["extremities", r.forward_extremities],
      ["restarts", r.restarts],
    ];
    for (const [name, value] of cells) {
      const td = document.createElement("td");
      td.className = name;
      td.textContent = value;
      tr.appendChild(td);
    }
    if (r.last_restart_reason) tr.title = "Last restart: " + r.last_restart_reason;
    tr.addEventListener("click", () => openDetail(r.room_id));
    return tr;
  });
  body.replaceChildren(...rows);
  $("rooms-empty").hidden = data.rooms.length > 0;
  $("status").textContent = data.total + " active room actor" + (data.total === 1 ? "" : "s") +
    (data.total > data.rooms.length ? " (showing " + data.rooms.length + ")" : "") +
    " · updated " + new Date().toLocaleTimeString();
}

function openDetail(roomID) {
  selectedRoom = roomID;
  $("detail").hidden = false;
  $("detail-room").textContent = roomID;
  $("detail-fields").replaceChildren();
  refreshDetail();
}

function closeDetail() {
  selectedRoom = null;
  $("detail").hidden = true;
}

async function refreshDetail() {
  const roomID = selectedRoom;
  try {
    const r = await call("GET", api + "/rooms/" + encodeURIComponent(roomID));
    if (roomID !== selectedRoom) return;
    $("detail-error").textContent = "";
    renderDetail(r);
  } catch (err) {
    if (roomID === selectedRoom) $("detail-error").textContent = err.message;
  }
}

function renderDetail(r) {
  const dist = (d, unit) => unit === "ms"
    ? "p50 " + ms(d.p50) + " · p90 " + ms(d.p90) + " · p99 " + ms(d.p99) + " ms (" + d.count + ")"
    : "mean " + fixed(d.mean, 1) + " · p99 " + fixed(d.p99, 0) + " (" + d.count + ")";
  const fields = [
    ["activated", new Date(r.activated_at).toLocaleString()],
    ["mailbox depth", r.mailbox_depth],
    ["events/s (last minute)", fixed(r.events_per_second, 2)],
    ["events committed", r.events_committed],
    ["messages processed", r.messages_processed],
    ["message latency", dist(r.message_latency, "ms")],
    ["commit latency", dist(r.commit_latency, "ms")],
    ["batch size", dist(r.batch_size)],
    ["state resolution", dist(r.state_resolution, "ms")],
    ["joined members", r.joined_members],
    ["state events", r.state_events],
    ["forward extremities", r.forward_extremities],
    ["depth", r.depth],
    ["epoch", r.epoch],
    ["restarts", r.restarts],
    ["last restart", r.last_restart_reason ? r.last_restart_reason + " (" + new Date(r.last_restart_at).toLocaleString() + ")" : "none"],
  ];
  if (r.actor) {
    fields.push(["answered by the actor", ms(r.actor.answered_in_seconds) + " ms"]);
    fields.push(["extremity IDs", (r.actor.forward_extremities || []).join(", ")]);
    fields.push(["servers in the room", (r.actor.servers || []).join(", ")]);
  }
  const dl = $("detail-fields");
  dl.replaceChildren();
  for (const [name, value] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = name;
    dl.append(dt, dd);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("detail-close").addEventListener("click", closeDetail);
  for (const id of ["sort", "limit", "paused"]) $(id).addEventListener("change", poll);
  if (sessionStorage.getItem(tokenKey)) start();
  else show(false);
});
