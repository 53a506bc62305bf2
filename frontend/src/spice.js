// The SPICE console page: get a ticket and give it to spice-html5 as the SPICE password. Each
// channel (main, display, inputs, cursor, sound) opens its own websocket to the portal, which
// checks the ticket on every one and signs in to QEMU itself: the real password stays there.
import { SpiceMainConn, sendCtrlAltDel } from "@spice-project/spice-html5/src/main.js";
import { setUpClipboard } from "./clipboard.js";
import {
  csrfToken, diagnose, getTicket, setUpMenu, statusLine,
} from "./console_common.js";
import { setUpFiles } from "./files.js";
import { spiceClipboard } from "./spice_clipboard.js";

const root = document.getElementById("console");
const screen = document.getElementById("spice-screen");
const reconnectButton = document.getElementById("btn-reconnect");
const policy = root.dataset.clipboard;  // both, to_guest, from_guest or off

let connection = null;
let connected = false;
let agentClipboard = null;

const { setState, showProblem } = statusLine(root);
setUpMenu(screen);
const clipboard = setUpClipboard(root, screen, () => (connected ? agentClipboard : null));
setUpFiles(root, screen, csrfToken);

async function failed(summary) {
  if (connection) { connection.stop(); connection = null; }
  connected = false;
  reconnectButton.hidden = false;
  setState("Disconnected", "error");
  showProblem([summary, ...(await diagnose(root.dataset.diagnoseUrl))].filter(Boolean).join(" "));
}

async function connect() {
  if (connection) { connection.stop(); connection = null; }
  reconnectButton.hidden = true;
  showProblem("");
  setState("Asking for a console ticket…");
  let ticket;
  try {
    ticket = await getTicket(root.dataset.ticketUrl);
  } catch (error) {
    await failed(error.message);
    return;
  }
  setState("Connecting…");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  connection = new SpiceMainConn({
    uri: `${scheme}//${location.host}${ticket.path}`,
    password: ticket.ticket,
    screen_id: "spice-screen",
    onerror: (error) => failed(`The console closed: ${error.message || error}.`),
    onsuccess: () => { connected = true; setState("Connected", "ok"); },
    onagent: fitToWindow,
  });
  agentClipboard = policy === "off" ? null : spiceClipboard(connection, {
    copiedInGuest: clipboard.copiedInGuest,
    mayCopy: policy === "both" || policy === "from_guest",
    mayPaste: policy === "both" || policy === "to_guest",
    max: Number(root.dataset.clipboardMax),
  });
}

// The desktop's resolution follows the screen's box, which is the whole window (X wants
// multiples of 8); the guest's agent applies it.
let resizeTimer = null;
function fitToWindow() {
  if (!connection || !connection.agent_connected) { return; }
  const width = screen.clientWidth - (screen.clientWidth % 8);
  const height = screen.clientHeight - (screen.clientHeight % 8);
  if (width >= 320 && height >= 200) { connection.resize_window(0, width, height, 32, 0, 0); }
}

// "Test sound": the desktop plays a short tone, which comes back through the sound channel.
async function testSound() {
  const response = await fetch(root.dataset.soundUrl, {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
  });
  const answer = await response.json().catch(() => ({}));
  showProblem(response.ok ? "" : (answer.error || `The portal refused (HTTP ${response.status}).`));
  if (response.ok) { setState("Playing a test tone in the desktop…", "ok"); }
  setTimeout(() => { if (connected) { setState("Connected", "ok"); } }, 4000);
}

reconnectButton.addEventListener("click", connect);
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(fitToWindow, 200);
});
document.getElementById("btn-cad").addEventListener("click", () => {
  if (connection) { sendCtrlAltDel(connection); }
});
document.getElementById("btn-sound")?.addEventListener("click", testSound);
document.getElementById("btn-fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) { document.exitFullscreen(); } else { root.requestFullscreen(); }
});

window.vdiConsole = {
  get connected() { return connected; },
  get connection() { return connection; },
};
connect();
