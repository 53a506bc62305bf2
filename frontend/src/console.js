// The console page: get a ticket, open the websocket, hand it to noVNC, explain failures.
import RFB from "@novnc/novnc";
import { setUpFiles } from "./files.js";

const root = document.getElementById("console");
const screen = document.getElementById("screen");
const stateText = document.getElementById("console-state");
const problem = document.getElementById("console-problem");
const reconnectButton = document.getElementById("btn-reconnect");
const clipboardPanel = document.getElementById("clipboard-panel");
const clipboardText = document.getElementById("clipboard-text");
const scaleOption = document.getElementById("opt-scale");
const resizeOption = document.getElementById("opt-resize");
const viewOnlyOption = document.getElementById("opt-viewonly");
const watchersBox = document.getElementById("console-watchers");
const watchersText = document.getElementById("watchers-text");
const consentBox = document.getElementById("console-consent");
const consentText = document.getElementById("consent-text");
const clipboardNote = document.getElementById("console-clipboard");
const clipboardPolicy = root.dataset.clipboard;  // both, to_guest, from_guest or off
const clipboardMax = Number(root.dataset.clipboardMax);
const mayPaste = clipboardPolicy === "both" || clipboardPolicy === "to_guest";
const mayCopy = clipboardPolicy === "both" || clipboardPolicy === "from_guest";
const watchers = new Set();
const explanations = JSON.parse(document.getElementById("close-explanations").textContent);

let rfb = null;
let socket = null;
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
  // The first ticket was asked for by the page itself, while this code loaded.
  const early = window.vdiTicket;
  window.vdiTicket = null;
  const response = await (early || fetch(root.dataset.ticketUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  }));
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
  socket = new WebSocket(`${scheme}//${location.host}${ticket.path}`,
    [root.dataset.subprotocol, root.dataset.ticketPrefix + ticket.ticket]);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("close", (event) => { closeCode = event.code; });
  // The portal's notices come as text frames (noVNC reads only binary ones).
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") { onNotice(JSON.parse(event.data)); }
  });
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
    setTimeout(() => failed(connected ? explainClose() : explainClose()), 0);
  });
  rfb.addEventListener("securityfailure", (event) => {
    showProblem(`The desktop refused the connection: ${event.detail.reason || "security failure"}.`);
  });
  rfb.addEventListener("clipboard", (event) => copiedInGuest(event.detail.text));
  rfb.addEventListener("desktopname", (event) => {
    if (event.detail.name) { document.title = `${event.detail.name} · console`; }
  });
}

// The clipboard, both ways, as the pool allows (the proxy enforces it; this page only avoids
// asking for what would be refused). Text copied in the desktop goes to the browser's
// clipboard (Clipboard API) and the panel; the browser's clipboard goes to the desktop when
// the console gets the focus.
let lastShared = null;
const utf8Length = (text) => new TextEncoder().encode(text).length;

let clipboardNoteTimer = null;
function tellClipboard(text) {
  clipboardNote.textContent = text;
  clipboardNote.hidden = !text;
  clearTimeout(clipboardNoteTimer);
  if (text) { clipboardNoteTimer = setTimeout(() => { clipboardNote.hidden = true; }, 10000); }
}

async function copiedInGuest(text) {
  if (!mayCopy) { return; }
  if (utf8Length(text) > clipboardMax) {
    tellClipboard(`The text copied in the desktop is over ${clipboardMax} bytes, the clipboard's limit: it was not taken.`);
    return;
  }
  clipboardText.value = text;
  lastShared = text;
  try {
    await navigator.clipboard.writeText(text);
    tellClipboard("");
  } catch {
    tellClipboard("Text copied in the desktop is in the Clipboard panel (this browser does not let the page write to your clipboard).");
  }
}

async function pasteIntoGuest() {
  if (!mayPaste || !rfb || !connected || rfb.viewOnly) { return; }
  let text;
  try {
    text = await navigator.clipboard.readText();
  } catch {
    return;  // not allowed here: the Clipboard panel still works
  }
  if (!text || text === lastShared) { return; }
  if (utf8Length(text) > clipboardMax) {
    tellClipboard(`Your clipboard holds over ${clipboardMax} bytes, the clipboard's limit: it was not sent.`);
    return;
  }
  lastShared = text;
  rfb.clipboardPasteFrom(text);
}

// Helpdesk watching: the user allows or refuses a watcher (the pool asks for consent), and
// ends the watching whenever they like. Answers go back as text frames.
let consentToken = null;
let consentTimer = null;

function tellPortal(message) {
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
}

function askConsent(notice) {
  consentToken = notice.token;
  consentText.textContent = `${notice.by} (helpdesk) asks to watch your screen, view only.`;
  consentBox.hidden = false;
  clearTimeout(consentTimer);
  consentTimer = setTimeout(() => { consentBox.hidden = true; }, notice.seconds * 1000);
}

function answerConsent(allow) {
  if (consentToken) { tellPortal({ consent: consentToken, allow }); }
  consentToken = null;
  consentBox.hidden = true;
}

function onNotice(notice) {
  if (notice.notice === "clipboard_refused") {
    tellClipboard(`Not copied: ${notice.reason}.`);
    return;
  }
  if (notice.notice === "watched") { watchers.add(notice.by); }
  if (notice.notice === "unwatched") { watchers.delete(notice.by); }
  if (notice.notice === "view_only" && rfb) { rfb.viewOnly = true; }
  if (notice.notice === "recorded") { document.getElementById("console-recorded").hidden = false; }
  if (notice.notice === "asking_consent") { setState("Waiting for the user to allow watching…"); }
  if (notice.notice === "consent_given") { setState(`${notice.by} allowed watching; connecting…`); }
  if (notice.notice === "consent_request") { askConsent(notice); }
  const names = [...watchers].sort();
  watchersBox.hidden = names.length === 0;
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

// Phones and tablets: noVNC turns taps and gestures into the mouse (tap: click, two-finger
// tap: right click, two-finger drag: wheel, long press: drag); the device's own keyboard
// types through a hidden field, as keysyms (like "Type it").
const touchInput = document.getElementById("touch-input");
const keyboardButton = document.getElementById("btn-keyboard");
const KEYSYM_BACKSPACE = 0xff08;
const KEYSYM_RETURN = 0xff0d;

function pressKeysym(keysym) {
  if (!rfb || !connected) { return; }
  rfb.sendKey(keysym, null, true);
  rfb.sendKey(keysym, null, false);
}

// The field keeps one space before the caret, so that Backspace has something to delete
// (an empty field reports nothing) and every key shows up as an input event.
const SENTINEL = " ";
function resetTouchInput() {
  touchInput.value = SENTINEL;
  touchInput.setSelectionRange(1, 1);
}

keyboardButton.hidden = !(navigator.maxTouchPoints > 0);
keyboardButton.addEventListener("click", () => { resetTouchInput(); touchInput.focus(); });
touchInput.addEventListener("input", (event) => {
  if (event.inputType === "deleteContentBackward") {
    pressKeysym(KEYSYM_BACKSPACE);
  } else if (event.inputType === "insertLineBreak" || event.inputType === "insertParagraph") {
    pressKeysym(KEYSYM_RETURN);
  } else if (event.data) {
    typeText(event.data);
  }
  resetTouchInput();
});

document.getElementById("btn-consent-allow").addEventListener("click", () => answerConsent(true));
document.getElementById("btn-consent-refuse").addEventListener("click", () => answerConsent(false));
document.getElementById("btn-end-watching").addEventListener("click", () => tellPortal({ end_watching: true }));
setUpFiles(root, screen, csrfToken);
reconnectButton.addEventListener("click", connect);
document.getElementById("btn-cad").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
document.getElementById("btn-fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) { document.exitFullscreen(); } else { root.requestFullscreen(); }
});
document.getElementById("btn-clipboard").addEventListener("click", (event) => {
  clipboardPanel.hidden = !clipboardPanel.hidden;
  event.currentTarget.setAttribute("aria-expanded", String(!clipboardPanel.hidden));
});
document.getElementById("btn-clip-send")?.addEventListener("click", () => {
  if (rfb) { lastShared = clipboardText.value; rfb.clipboardPasteFrom(clipboardText.value); }
});
document.getElementById("btn-clip-type")?.addEventListener("click", () => typeText(clipboardText.value));
screen.addEventListener("focusin", pasteIntoGuest);
window.addEventListener("focus", () => { if (screen.contains(document.activeElement)) { pasteIntoGuest(); } });
scaleOption.addEventListener("change", () => { if (rfb) { rfb.scaleViewport = scaleOption.checked; } });
resizeOption.addEventListener("change", () => { if (rfb) { rfb.resizeSession = resizeOption.checked; } });
// noVNC drops a resize asked for while its previous one is pending and does not look again
// when the answer comes, so a window that changed meanwhile kept the old size: look again
// every second (it asks only when the sizes differ and nothing is pending).
setInterval(() => { if (rfb && connected && resizeOption.checked) { rfb.resizeSession = true; } }, 1000);
viewOnlyOption.addEventListener("change", () => { if (rfb) { rfb.viewOnly = viewOnlyOption.checked; } });

const sessionEnd = document.getElementById("session-end");
function showTimeLeft() {
  if (!sessionEnd) { return; }
  const minutes = Math.max(0, Math.round((new Date(sessionEnd.dateTime) - Date.now()) / 60000));
  document.getElementById("session-left").textContent = `${minutes} min left`;
}
showTimeLeft();
setInterval(showTimeLeft, 30000);

window.vdiConsole = { typeText, get connected() { return connected; }, get rfb() { return rfb; } };
connect();
