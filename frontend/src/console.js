// The console page: get a ticket, open the websocket, hand it to noVNC, explain failures,
// and pass the portal's notices (text frames) to the parts of the page they concern.
import RFB from "@novnc/novnc";
import { setUpClipboard } from "./clipboard.js";
import {
  csrfToken, diagnose, getTicket, setUpMenu, statusLine, ticketFrom,
} from "./console_common.js";
import { setUpFiles } from "./files.js";
import { typeText } from "./keys.js";
import { setUpTouch } from "./touch.js";
import { setUpWatching } from "./watching.js";

const root = document.getElementById("console");
const screen = document.getElementById("screen");
const reconnectButton = document.getElementById("btn-reconnect");
const scaleOption = document.getElementById("opt-scale");
const resizeOption = document.getElementById("opt-resize");
const viewOnlyOption = document.getElementById("opt-viewonly");
const explanations = JSON.parse(document.getElementById("close-explanations").textContent);

let rfb = null;
let socket = null;
let connected = false;
let closeCode = null;
let early = false;  // the socket is the one the page opened (its ticket may have expired)
const liveRfb = () => (rfb && connected ? rfb : null);

const { setState, showProblem } = statusLine(root);

function tellPortal(message) {
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
}

const clipboard = setUpClipboard(root, screen, liveRfb);
const onWatchNotice = setUpWatching(tellPortal);
setUpTouch(liveRfb);
setUpFiles(root, screen, csrfToken);
setUpMenu(screen);

// The user changed their keyboard layout (here or on their settings page): the line says so.
function showKeyboard(label) {
  const line = document.getElementById("console-keyboard");
  if (line && label) { line.textContent = label; }
}

async function failed(summary) {
  connected = false;
  reconnectButton.hidden = false;
  setState("Disconnected", "error");
  const reasons = await diagnose(root.dataset.diagnoseUrl);
  showProblem([summary, ...reasons].filter(Boolean).join(" "));
}

function explainClose() {
  if (closeCode === null || closeCode === 1006) {
    return "The console connection could not be opened or was cut.";
  }
  return explanations[closeCode] || `The connection closed (code ${closeCode}).`;
}

function onNotice(notice) {
  if (notice.notice === "clipboard_refused") { clipboard.refused(notice.reason); }
  if (notice.notice === "view_only" && rfb) { rfb.viewOnly = true; }
  if (notice.notice === "recorded") { document.getElementById("console-recorded").hidden = false; }
  if (notice.notice === "asking_consent") { setState("Waiting for the user to allow watching…"); }
  if (notice.notice === "consent_given") { setState(`${notice.by} allowed watching; connecting…`); }
  if (notice.notice === "keyboard") { showKeyboard(notice.label); }
  onWatchNotice(notice);
}

// The first socket was opened by the page while this code loaded (console.html): it is taken
// over with what it received meanwhile. Later ones (Reconnect) are opened here.
async function openSocket() {
  const pending = window.vdiEarly;
  window.vdiEarly = null;
  const opened = pending && await pending;
  if (opened && opened.refused) { await ticketFrom(opened.refused); }
  if (opened) {
    opened.socket.removeEventListener("message", opened.hold);
    opened.socket.removeEventListener("close", opened.closed);
    early = true;
    return opened;
  }
  early = false;
  const ticket = await getTicket(root.dataset.ticketUrl);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${ticket.path}`,
    [root.dataset.subprotocol, root.dataset.ticketPrefix + ticket.ticket,
      root.dataset.firstFrameProtocol]);
  socket.binaryType = "arraybuffer";
  return { socket, held: [], closeCode: null };
}

// The ticket that came with the page may have expired before its socket opened (a page left
// loading in a background tab): one more try, with a new ticket.
function retryWithNewTicket() {
  if (!early || connected || closeCode !== Number(root.dataset.ticketRefusedCode)) { return false; }
  early = false;
  connect();
  return true;
}

async function connect() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  reconnectButton.hidden = true;
  showProblem("");
  setState("Asking for a console ticket…");
  let opened;
  try {
    opened = await openSocket();
  } catch (error) {
    await failed(error.message);
    return;
  }
  setState("Connecting…");
  socket = opened.socket;
  closeCode = opened.closeCode;
  socket.addEventListener("close", (event) => { closeCode = event.code; });
  // The portal's notices come as text frames (noVNC reads only binary ones).
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") { onNotice(JSON.parse(event.data)); }
  });
  if (socket.readyState === WebSocket.CLOSED) {  // refused before this code ran
    opened.held.filter((data) => typeof data === "string").forEach((data) => onNotice(JSON.parse(data)));
    if (!retryWithNewTicket()) { await failed(explainClose()); }
    return;
  }
  rfb = new RFB(screen, socket, { shared: true });
  // The guest's resolution follows the window where it can (QEMU passes the size to a
  // virtio-gpu screen); scaling covers the guests that keep theirs.
  rfb.resizeSession = resizeOption.checked;
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
    setTimeout(() => { if (!retryWithNewTicket()) { failed(explainClose()); } }, 0);
  });
  rfb.addEventListener("securityfailure", (event) => {
    showProblem(`The desktop refused the connection: ${event.detail.reason || "security failure"}.`);
  });
  rfb.addEventListener("clipboard", (event) => clipboard.copiedInGuest(event.detail.text));
  rfb.addEventListener("desktopname", (event) => {
    if (event.detail.name) { document.title = `${event.detail.name} · console`; }
  });
  // Last: what the socket received while this code loaded may hold the whole handshake, and
  // noVNC connects while it reads it, so everything above must be in place first.
  for (const data of opened.held) { socket.dispatchEvent(new MessageEvent("message", { data })); }
}

reconnectButton.addEventListener("click", connect);
document.getElementById("btn-cad").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
document.getElementById("btn-fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) { document.exitFullscreen(); } else { root.requestFullscreen(); }
});
scaleOption.addEventListener("change", () => { if (rfb) { rfb.scaleViewport = scaleOption.checked; } });
resizeOption.addEventListener("change", () => { if (rfb) { rfb.resizeSession = resizeOption.checked; } });
// noVNC drops a resize asked for while its previous one is pending and does not look again
// when the answer comes, so a window that changed meanwhile kept the old size: look again
// every second (it asks only when the sizes differ and nothing is pending).
setInterval(() => { if (liveRfb() && resizeOption.checked) { rfb.resizeSession = true; } }, 1000);
viewOnlyOption.addEventListener("change", () => { if (rfb) { rfb.viewOnly = viewOnlyOption.checked; } });

const sessionEnd = document.getElementById("session-end");
function showTimeLeft() {
  if (!sessionEnd) { return; }
  const minutes = Math.max(0, Math.round((new Date(sessionEnd.dateTime) - Date.now()) / 60000));
  document.getElementById("session-left").textContent = `${minutes} min left`;
}
showTimeLeft();
setInterval(showTimeLeft, 30000);

window.vdiConsole = {
  typeText: (text) => { if (liveRfb()) { typeText(rfb, text); } },
  get connected() { return connected; },
  get rfb() { return rfb; },
};
connect();
