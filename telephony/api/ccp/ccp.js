// qconnect web CCP: one agent's contacts, banners and controls, live from the WebSocket.
// Every button calls the HTTP API (docs/api.md); the WebSocket sends a snapshot after each
// change, and the page renders only snapshots, so what it shows is what the switch says.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  agent: null,
  displayName: null,
  snapshot: null,
  actions: {},
  quickConnects: [],
  since: new Map(), // connection id -> {banner, at (ms)}
  offers: new Map(), // contact id -> expiry (ms)
  openMenu: null, // contact id whose quick connect menu is open
  backfilled: new Set(), // contacts whose trace record filled in the timeline
  ws: null,
  wsDelay: 500,
  loggedOut: false,
};

const BANNER_CLASS = (banner) => "b-" + banner.replace(/\s+/g, "-");
const CONTACT_ACTIONS = [
  ["conference", "Join", "join"],
  ["holdAll", "Hold all", "hold-all"],
  ["swap", "Swap", "swap"],
];
const ACTION_PATH = {
  accept: "accept", reject: "reject", quickConnect: "quick-connect", conference: "conference",
  holdAll: "hold-all", swap: "swap", leave: "leave",
};

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "onclick") el.addEventListener("click", value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// --- HTTP ---

async function api(method, path, body, headers = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "X-Requested-With": "qconnect-ccp", ...headers },
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* empty body */ }
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function toast(message, bad = false) {
  const el = $("#toast");
  el.textContent = message;
  el.className = "toast" + (bad ? " bad" : "");
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

async function act(label, method, path, body) {
  try {
    const snapshot = await api(method, path, body);
    // The WebSocket sends the new snapshot with what is allowed now; without it, show
    // at least the banners the answer carries.
    const live = state.ws && state.ws.readyState === WebSocket.OPEN;
    if (!live && snapshot && snapshot.agent) applySnapshot({ ...snapshot, actions: state.actions });
  } catch (error) {
    if (error.status === 401) return showLogin("Your session ended: sign in again.");
    toast(`${label}: ${error.message}`, true);
  }
}

const agentPath = () => `/api/agents/${encodeURIComponent(state.agent)}`;
const contactAction = (contact, action, body) =>
  act(action, "POST", `${agentPath()}/contacts/${encodeURIComponent(contact)}/${ACTION_PATH[action]}`, body);
const connectionAction = (connection, action) =>
  act(action, "POST", `${agentPath()}/connections/${encodeURIComponent(connection)}/${action}`);

// --- login ---

async function login(event) {
  event.preventDefault();
  const user = $("#login-user").value.trim();
  const password = $("#login-password").value;
  $("#login-error").textContent = "";
  $("#login-submit").disabled = true;
  try {
    const credentials = btoa(unescape(encodeURIComponent(`${user}:${password}`)));
    const who = await api("POST", "/api/session", undefined, { Authorization: `Basic ${credentials}` });
    $("#login-password").value = "";
    await start(who);
  } catch (error) {
    $("#login-error").textContent = error.status === 401 ? "Wrong login or password." : error.message;
  } finally {
    $("#login-submit").disabled = false;
  }
}

async function logout() {
  state.loggedOut = true;
  if (state.ws) state.ws.close();
  try { await api("DELETE", "/api/session"); } catch (_) { /* already gone */ }
  showLogin("");
}

function showLogin(message) {
  state.agent = null;
  state.loggedOut = true;
  if (state.ws) state.ws.close();
  $("#ccp").hidden = true;
  $("#agent-bar").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

async function start(who) {
  state.agent = who.agent;
  state.displayName = who.displayName || who.agent;
  state.loggedOut = false;
  state.since.clear();
  state.offers.clear();
  state.backfilled.clear();
  $("#timeline").replaceChildren();
  $("#agent-name").textContent = state.displayName;
  $("#agent-login").textContent = `(${who.agent})`;
  $("#login").hidden = true;
  $("#ccp").hidden = false;
  $("#agent-bar").hidden = false;
  document.title = `${state.displayName} · qconnect CCP`;
  try {
    const qc = await api("GET", `${agentPath()}/quick-connects`);
    state.quickConnects = qc.quickConnects;
  } catch (error) {
    toast(`quick connects: ${error.message}`, true);
  }
  applySnapshot({ ...(await api("GET", agentPath())), actions: {} });
  connect();
}

// --- the event stream ---

function connect() {
  if (state.loggedOut || !state.agent) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${agentPath()}/events`);
  state.ws = ws;
  ws.onopen = () => {
    state.wsDelay = 500;
    $("#live").textContent = "live";
    $("#live").classList.add("on");
  };
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "snapshot") applySnapshot(data);
    else onEvent(data);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    $("#live").textContent = "offline";
    $("#live").classList.remove("on");
    if (state.loggedOut) return;
    // The session may be gone (switch restarted): check before reconnecting.
    setTimeout(async () => {
      try {
        await api("GET", "/api/session");
        connect();
      } catch (error) {
        if (error.status === 401) showLogin("Your session ended: sign in again.");
        else connect();
      }
    }, state.wsDelay);
    state.wsDelay = Math.min(state.wsDelay * 2, 8000);
  };
}

function onEvent(event) {
  if (event.type === "offerCreated" && event.expires) {
    state.offers.set(event.contact, Date.parse(event.expires));
  }
  if (event.type === "banner" && event.connection) {
    state.since.set(event.connection, { banner: event.banner, at: Date.parse(event.at) || Date.now() });
  }
  addTimeline(event);
}

// --- rendering ---

function applySnapshot(snapshot) {
  state.snapshot = snapshot;
  if (snapshot.actions) state.actions = snapshot.actions;
  const now = Date.now();
  for (const contact of snapshot.contacts) {
    if (!state.backfilled.has(contact.id)) {
      state.backfilled.add(contact.id);
      backfill(contact.id);
    }
    for (const conn of contact.connections) {
      const seen = state.since.get(conn.id);
      if (!seen || seen.banner !== conn.banner) state.since.set(conn.id, { banner: conn.banner, at: now });
    }
  }
  render();
}

function render() {
  const snap = state.snapshot;
  if (!snap) return;
  for (const button of document.querySelectorAll(".status-switch button")) {
    button.classList.toggle("on", button.dataset.status === snap.status);
    button.setAttribute("aria-pressed", String(button.dataset.status === snap.status));
  }
  const pill = $("#status-current");
  pill.textContent = snap.status;
  pill.className = `status-pill ${snap.status}`;
  $("#empty-hint").textContent = snap.status === "Available"
    ? "You are Available: contacts from your queues ring your phone and show here."
    : "You are Offline: set yourself Available to take calls from your queues.";
  const list = $("#contacts");
  list.replaceChildren(...snap.contacts.map(renderContact));
  $("#no-contacts").hidden = snap.contacts.length > 0;
  tick();
}

function partyLabel(party) {
  if (party === "customer") return "Customer";
  if (party === state.agent) return `${state.displayName} (you)`;
  if (/^[a-z][\w.-]*$/.test(party)) return party.charAt(0).toUpperCase() + party.slice(1);
  return party;
}

function partyKind(party) {
  if (party === "customer") return "customer";
  if (/^\+?\d+$/.test(party)) return "phone number";
  if (state.quickConnects.some((q) => q.type === "queue" && q.name === party)) return "queue";
  return "agent";
}

function renderContact(contact) {
  const allowed = state.actions[contact.id] || { contact: [], connections: {} };
  const can = (action) => allowed.contact.includes(action);
  const offered = can("accept");
  const article = h("article", {
    class: `contact${offered ? " offered" : ""}`,
    "data-testid": "contact",
    "data-contact": contact.id,
  });
  article.append(
    h("header", {},
      h("div", {}, h("span", { class: "queue", text: contact.queue || "Transfer" })),
      h("span", { class: "cid", title: contact.id, text: contact.id.slice(0, 8) })),
  );
  if (offered) {
    article.append(
      h("div", { class: "offer" },
        h("button", { class: "accept", "data-testid": "accept", onclick: () => contactAction(contact.id, "accept") }, "Accept"),
        h("button", { class: "reject", "data-testid": "reject", onclick: () => contactAction(contact.id, "reject") }, "Reject"),
        h("span", { class: "countdown", "data-offer": contact.id })),
    );
  }
  const connections = h("ul", { class: "connections" });
  for (const conn of contact.connections) {
    const items = allowed.connections[conn.id] || [];
    const button = (action, label) => h("button", {
      class: `small${action === "end" ? " danger" : ""}`,
      "data-testid": action,
      disabled: !items.includes(action),
      onclick: () => connectionAction(conn.id, action),
    }, label);
    connections.append(
      h("li", {
        class: `connection ${BANNER_CLASS(conn.banner)}`,
        "data-testid": "connection",
        "data-connection": conn.id,
        "data-party": conn.party,
      },
      h("span", { class: "stripe" }),
      h("span", { class: "party" }, partyLabel(conn.party),
        h("span", { class: "banner", "data-testid": "banner", text: conn.banner }),
        h("small", { text: partyKind(conn.party) })),
      h("span", { class: "timer", "data-since": conn.id, "data-testid": "timer" }),
      offered ? h("span") : h("span", { class: "buttons" },
        button("hold", "Hold"), button("resume", "Resume"), button("end", "End"))),
    );
  }
  article.append(connections);
  if (!offered) {
    const menuOpen = state.openMenu === contact.id && can("quickConnect");
    const menu = h("div", { class: "qc-menu", "data-testid": "qc-menu", hidden: !menuOpen },
      h("h3", { text: "Quick connects" }),
      state.quickConnects.map((qc) => h("button", {
        "data-testid": "qc-option",
        "data-name": qc.name,
        onclick: () => {
          state.openMenu = null;
          contactAction(contact.id, "quickConnect", { name: qc.name });
        },
      }, h("span", { text: qc.name }), h("span", { class: "type", text: qc.type.replace("_", " ") }))));
    article.append(
      h("footer", { class: "contact-actions" },
        h("div", { class: "qc" },
          h("button", {
            "data-testid": "quick-connect",
            disabled: !can("quickConnect"),
            onclick: () => {
              state.openMenu = state.openMenu === contact.id ? null : contact.id;
              render();
            },
          }, "Quick connect ▾"),
          menu),
        CONTACT_ACTIONS.map(([action, label, testid]) => h("button", {
          "data-testid": testid,
          disabled: !can(action),
          onclick: () => contactAction(contact.id, action),
        }, label)),
        h("span", { class: "spacer" }),
        h("button", {
          class: "danger",
          "data-testid": "leave",
          disabled: !can("leave"),
          onclick: () => contactAction(contact.id, "leave"),
        }, "Leave")),
    );
  }
  return article;
}

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  return `${mm}:${String(s % 60).padStart(2, "0")}`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-since]")) {
    const seen = state.since.get(el.dataset.since);
    el.textContent = seen ? clock(now - seen.at) : "";
  }
  for (const el of document.querySelectorAll("[data-offer]")) {
    const expires = state.offers.get(el.dataset.offer);
    el.textContent = expires ? `rings ${Math.max(0, Math.ceil((expires - now) / 1000))} s` : "ringing";
  }
}

// --- the timeline ---

function describe(e) {
  const who = (p) => (p ? partyLabel(p) : "nobody");
  switch (e.type) {
    case "agentStatus": return ["status", `Status ${e.previous} → ${e.status}`];
    case "contactCreated": return ["contact", `Contact created (${e.initiation}${e.queue ? ", " + e.queue : ""})`];
    case "contactQueued": return ["contact", `Queued in ${e.queue}`];
    case "contactDequeued": return ["contact", `Left ${e.queue} (${e.reason})`];
    case "offerCreated": return ["offer", `Offered to ${who(e.agent)}${e.queue ? " from " + e.queue : " (direct)"}`];
    case "offerAccepted": return ["offer", `${who(e.agent)} accepted`];
    case "offerRejected": return ["fail", `${who(e.agent)} rejected`];
    case "offerTimedOut": return ["fail", `No answer from ${who(e.agent)}`];
    case "offerCancelled": return ["fail", `Offer to ${who(e.agent)} withdrawn: ${e.reason}`];
    case "connectionAdded": return ["banner", `${who(e.party)} added: ${e.banner}`];
    case "banner": return ["banner", `${who(e.party)}: ${e.previous} → ${e.banner}${e.reason ? " (" + e.reason + ")" : ""}`];
    case "quickConnect": return ["action", `Quick connect ${e.name} (${e.quickConnectType.replace("_", " ")} → ${e.target})`];
    case "transferFailed": return ["fail", `Transfer to ${who(e.party)} failed: ${e.reason}`];
    case "action": return ["action", `${who(e.agent)}: ${e.action}`];
    case "handover": return ["action", `${who(e.agent)} left; the customer stays with ${who(e.party)}`];
    case "partyDisconnected": return ["end", `${who(e.party)} disconnected: ${e.reason}`];
    case "contactEnded": return ["end", `Contact ended: ${e.reason}`];
    case "flowBlock": return ["flow", `${e.flow} · ${e.blockType}${e.outcome ? " → " + e.outcome : ""}`];
    case "promptStarted": return ["prompt", `▶ “${e.what}” to ${who(e.to)}`];
    case "promptEnded": return ["prompt", `■ “${e.what}” to ${who(e.to)} ended`];
    default: return ["other", e.type];
  }
}

// What happened on a contact before this agent was on it (the inbound flow, a transfer
// flow): its contact trace record, up to the first event the WebSocket brought.
async function backfill(contactId) {
  let record;
  try {
    record = await api("GET", `/api/contacts/${encodeURIComponent(contactId)}`);
  } catch (_) {
    return;
  }
  const live = [...document.querySelectorAll("#timeline li[data-live]")]
    .filter((li) => li.dataset.contact === contactId)
    .map((li) => Number(li.dataset.t));
  const firstLive = live.length ? Math.min(...live) : Infinity;
  const prompts = new Map();
  for (const entry of record.timeline) {
    // Later entries came live, except the end of a prompt that began before this agent
    // was on the call (nobody's CCP was listening for it then).
    const late = Date.parse(entry.at) >= firstLive;
    if (late && !(entry.kind === "promptEnd" && prompts.has(entry.id))) continue;
    let event = { ...entry, type: entry.kind, contact: contactId };
    if (entry.kind === "prompt") {
      prompts.set(entry.id, entry);
      event.type = "promptStarted";
    } else if (entry.kind === "promptEnd") {
      const started = prompts.get(entry.id);
      if (!started) continue;
      event = { ...started, type: "promptEnded", at: entry.at, contact: contactId };
    } else if (entry.kind === "recording") {
      continue;
    }
    if (entry.agent && entry.agent !== state.agent) continue; // another agent's CCP
    addTimeline(event, true);
  }
}

function addTimeline(event, past = false) {
  const [kind, text] = describe(event);
  const at = event.at ? new Date(event.at) : new Date();
  const t = at.getTime();
  const list = $("#timeline");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const row = h("li", {
    class: `k-${kind}${past ? " past" : ""}`,
    "data-type": event.type,
    "data-contact": event.contact || "",
    "data-t": String(t),
    "data-live": past ? null : "",
  },
  h("span", { class: "t", text: at.toLocaleTimeString([], { hour12: false }) }),
  h("span", { class: "dot" }),
  h("span", {}, text, event.contact ? h("span", { class: "chip", text: event.contact.slice(0, 8) }) : null));
  // Rows stay in time order: a backfilled row goes before the later ones.
  let after = list.lastElementChild;
  while (after && Number(after.dataset.t) > t) after = after.previousElementSibling;
  if (after) after.after(row);
  else list.prepend(row);
  while (list.children.length > 500) list.firstElementChild.remove();
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

// --- wiring ---

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
$("#clear-timeline").addEventListener("click", () => $("#timeline").replaceChildren());
for (const button of document.querySelectorAll(".status-switch button")) {
  button.addEventListener("click", () =>
    act("status", "PUT", `${agentPath()}/status`, { status: button.dataset.status }));
}
document.addEventListener("click", (event) => {
  if (state.openMenu && !event.target.closest(".qc")) {
    state.openMenu = null;
    render();
  }
});
setInterval(tick, 1000);

// A page reload keeps the session cookie: pick the CCP up where it was.
api("GET", "/api/session").then(start).catch(() => showLogin(""));
