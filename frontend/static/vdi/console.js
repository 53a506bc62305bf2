// The console page: get a ticket, open the websocket, hand it to noVNC, explain failures.
import RFB from "../novnc/core/rfb.js";

const root = document.getElementById("console");
const screen = document.getElementById("screen");
const stateText = document.getElementById("console-state");
const problem = document.getElementById("console-problem");
const reconnectButton = document.getElementById("btn-reconnect");
const clipboardPanel = document.getElementById("clipboard-panel");
const clipboardText = document.getElementById("clipboard-text");
const scaleOption = document.getElementById("opt-scale");
const viewOnlyOption = document.getElementById("opt-viewonly");
const watchersText = document.getElementById("console-watchers");
const watchers = new Set();
const explanations = JSON.parse(document.getElementById("close-explanations").textContent);

let rfb = null;
let connected = false;
let closeCode = null;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function setState(text, kind = "info") {
  stateText.textContent = text;
  stateText.dataset.kind = kind;
  root.dataset.state = kind;
}

function showProblem(text) {
  problem.textContent = text;
  problem.hidden = !text;
}

async function diagnose() {
  const url = `${root.dataset.diagnoseUrl}?origin=${encodeURIComponent(location.origin)}`;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) { return []; }
    const report = await response.json();
    const reasons = [...report.problems];
    if (report.last_error) { reasons.push(`Last refusal: ${report.last_error}.`); }
    return reasons;
  } catch {
    return ["The portal did not answer: check your network connection."];
  }
}

async function getTicket() {
  const response = await fetch(root.dataset.ticketUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `The portal refused a console ticket (HTTP ${response.status}).`);
  }
  return body;
}

async function failed(summary) {
  connected = false;
  reconnectButton.hidden = false;
  setState("Disconnected", "error");
  const reasons = await diagnose();
  showProblem([summary, ...reasons].filter(Boolean).join(" "));
}

function explainClose() {
  if (closeCode === null || closeCode === 1006) {
    return "The console connection could not be opened or was cut.";
  }
  return explanations[closeCode] || `The connection closed (code ${closeCode}).`;
}

async function connect() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  reconnectButton.hidden = true;
  showProblem("");
  closeCode = null;
  setState("Asking for a console ticket…");
  let ticket;
  try {
    ticket = await getTicket();
  } catch (error) {
    await failed(error.message);
    return;
  }
  setState("Connecting…");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${ticket.path}`,
    [root.dataset.subprotocol, root.dataset.ticketPrefix + ticket.ticket]);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("close", (event) => { closeCode = event.code; });
  // The portal's notices come as text frames (noVNC reads only binary ones).
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") { onNotice(JSON.parse(event.data)); }
  });
  rfb = new RFB(screen, socket, { shared: true });
  rfb.scaleViewport = scaleOption.checked;
  rfb.viewOnly = viewOnlyOption.checked;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    connected = true;
    setState("Connected", "ok");
    rfb.focus();
  });
  rfb.addEventListener("disconnect", () => {
    rfb = null;
    // Let the socket's close event land first so its code is known.
    setTimeout(() => failed(connected ? explainClose() : explainClose()), 0);
  });
  rfb.addEventListener("securityfailure", (event) => {
    showProblem(`The desktop refused the connection: ${event.detail.reason || "security failure"}.`);
  });
  rfb.addEventListener("clipboard", (event) => { clipboardText.value = event.detail.text; });
  rfb.addEventListener("desktopname", (event) => {
    if (event.detail.name) { document.title = `${event.detail.name} · console`; }
  });
}

function onNotice(notice) {
  if (notice.notice === "watched") { watchers.add(notice.by); }
  if (notice.notice === "unwatched") { watchers.delete(notice.by); }
  if (notice.notice === "view_only" && rfb) { rfb.viewOnly = true; }
  const names = [...watchers].sort();
  watchersText.hidden = names.length === 0;
  watchersText.textContent = names.length
    ? `${names.join(", ")} (helpdesk) ${names.length > 1 ? "are" : "is"} watching your screen, view only.`
    : "";
}

// "Type it": text sent as keysyms, which the hypervisor maps to keys with its keymap, so it
// works whatever the browser's keyboard layout is. The hypervisor does not add Shift by
// itself, so characters that need Shift on its (US) keymap are sent with Shift held.
const SPECIAL_KEYSYMS = { "\n": 0xff0d, "\t": 0xff09 };
const SHIFT = 0xffe1;
const SHIFTED = new Set('~!@#$%^&*()_+{}|:"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ');

function keysymOf(char) {
  const code = char.codePointAt(0);
  return SPECIAL_KEYSYMS[char] ?? (code < 0x100 ? code : 0x01000000 + code);
}

function typeText(text) {
  if (!rfb || !connected) { return; }
  for (const char of text) {
    const shifted = SHIFTED.has(char);
    if (shifted) { rfb.sendKey(SHIFT, "ShiftLeft", true); }
    rfb.sendKey(keysymOf(char), null, true);
    rfb.sendKey(keysymOf(char), null, false);
    if (shifted) { rfb.sendKey(SHIFT, "ShiftLeft", false); }
  }
}

reconnectButton.addEventListener("click", connect);
document.getElementById("btn-cad").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
document.getElementById("btn-fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) { document.exitFullscreen(); } else { root.requestFullscreen(); }
});
document.getElementById("btn-clipboard").addEventListener("click", (event) => {
  clipboardPanel.hidden = !clipboardPanel.hidden;
  event.currentTarget.setAttribute("aria-expanded", String(!clipboardPanel.hidden));
});
document.getElementById("btn-clip-send").addEventListener("click", () => {
  if (rfb) { rfb.clipboardPasteFrom(clipboardText.value); }
});
document.getElementById("btn-clip-type").addEventListener("click", () => typeText(clipboardText.value));
scaleOption.addEventListener("change", () => { if (rfb) { rfb.scaleViewport = scaleOption.checked; } });
viewOnlyOption.addEventListener("change", () => { if (rfb) { rfb.viewOnly = viewOnlyOption.checked; } });

const sessionEnd = document.getElementById("session-end");
function showTimeLeft() {
  if (!sessionEnd) { return; }
  const minutes = Math.max(0, Math.round((new Date(sessionEnd.dateTime) - Date.now()) / 60000));
  document.getElementById("session-left").textContent = `${minutes} min left`;
}
showTimeLeft();
setInterval(showTimeLeft, 30000);

window.vdiConsole = { typeText, get connected() { return connected; } };
connect();
