// The SPICE console page: get a ticket and give it to spice-html5 as the SPICE password. Each
// channel (main, display, inputs, cursor, sound) opens its own websocket to the portal, which
// checks the ticket on every one and signs in to QEMU itself: the real password stays there.
import {
  SpiceMainConn, handle_resize, resize_helper, sendCtrlAltDel,
} from "@spice-project/spice-html5/src/main.js";

const root = document.getElementById("console");
const stateText = document.getElementById("console-state");
const problem = document.getElementById("console-problem");
const reconnectButton = document.getElementById("btn-reconnect");

let connection = null;
let connected = false;

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

async function getTicket() {
  const early = window.vdiTicket;  // asked for by the page while this code loaded
  window.vdiTicket = null;
  const response = await (early || fetch(root.dataset.ticketUrl, {
    method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
  }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `The portal refused a console ticket (HTTP ${response.status}).`);
  }
  return body;
}

async function diagnose() {
  try {
    const response = await fetch(root.dataset.diagnoseUrl, { credentials: "same-origin" });
    const report = await response.json();
    const reasons = [...report.problems];
    if (report.last_error) { reasons.push(`Last refusal: ${report.last_error}.`); }
    return reasons;
  } catch {
    return ["The portal did not answer: check your network connection."];
  }
}

async function failed(summary) {
  if (connection) { connection.stop(); connection = null; }
  connected = false;
  reconnectButton.hidden = false;
  setState("Disconnected", "error");
  showProblem([summary, ...(await diagnose())].filter(Boolean).join(" "));
}

async function connect() {
  if (connection) { connection.stop(); connection = null; }
  reconnectButton.hidden = true;
  showProblem("");
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
  connection = new SpiceMainConn({
    uri: `${scheme}//${location.host}${ticket.path}`,
    password: ticket.ticket,
    screen_id: "spice-screen",
    onerror: (error) => failed(`The console closed: ${error.message || error}.`),
    onsuccess: () => { connected = true; setState("Connected", "ok"); },
    onagent: (agent) => { resize_helper(agent); },
  });
}

reconnectButton.addEventListener("click", connect);
window.addEventListener("resize", handle_resize);
document.getElementById("btn-cad").addEventListener("click", () => {
  if (connection) { sendCtrlAltDel(connection); }
});
document.getElementById("btn-fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) { document.exitFullscreen(); } else { root.requestFullscreen(); }
});

window.vdiConsole = {
  get connected() { return connected; },
  get connection() { return connection; },
};
connect();
