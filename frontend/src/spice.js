// The SPICE console page: get a ticket and give it to spice-html5 as the SPICE password. Each
// channel (main, display, inputs, cursor, sound) opens its own websocket to the portal, which
// checks the ticket on every one and signs in to QEMU itself: the real password stays there.
import {
  SpiceMainConn, handle_resize, resize_helper, sendCtrlAltDel,
} from "@spice-project/spice-html5/src/main.js";
import { diagnose, getTicket, setUpMenu, statusLine } from "./console_common.js";

const root = document.getElementById("console");
const reconnectButton = document.getElementById("btn-reconnect");

let connection = null;
let connected = false;

const { setState, showProblem } = statusLine(root);
setUpMenu(document.getElementById("spice-screen"));

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
