// The clipboard, both ways, as the pool allows (the proxy enforces it; this page only avoids
// asking for what would be refused). The browser's Async Clipboard is used where the browser
// allows it, the Clipboard panel is the fallback both ways:
// - text copied in the desktop goes to the browser's clipboard and the panel;
// - the browser's clipboard goes to the desktop when the console gets the focus, if it changed
//   since the page last saw it: text sent from the panel stays sent when the user clicks back
//   into the console, and a text is not sent twice;
// - the panel sends its text to the desktop's clipboard, or types it as keysyms ("Type it").
// Every look at the browser's clipboard takes its turn (one after the other), and
// #console[data-clipboard-looks] counts those done, for whoever needs to know one has run.
import { typeText } from "./keys.js";

const utf8Length = (text) => new TextEncoder().encode(text).length;

// The browser's clipboard text, or null when the browser does not let the page read it.
async function readBrowserClipboard() {
  try {
    return await navigator.clipboard.readText();
  } catch {
    return null;
  }
}

export function setUpClipboard(root, screen, liveRfb) {
  const panel = document.getElementById("clipboard-panel");
  const panelText = document.getElementById("clipboard-text");
  const note = document.getElementById("console-clipboard");
  const policy = root.dataset.clipboard;  // both, to_guest, from_guest or off
  const max = Number(root.dataset.clipboardMax);
  const mayPaste = policy === "both" || policy === "to_guest";
  const mayCopy = policy === "both" || policy === "from_guest";
  let seen = null;  // the browser clipboard's text when the page last read or wrote it
  let turn = Promise.resolve();
  let looks = 0;
  let noteKind = null;
  let noteTimer = null;

  // A note of a kind ("refused", "limit", "fallback"); a later success clears only a note of
  // its own kind, never the proxy's word that something was refused.
  function tell(text, kind) {
    note.textContent = text;
    note.hidden = !text;
    noteKind = text ? kind : null;
    clearTimeout(noteTimer);
    if (text) { noteTimer = setTimeout(() => { note.hidden = true; noteKind = null; }, 10000); }
  }

  function clear(kind) {
    if (noteKind === kind) { tell("", kind); }
  }

  function inTurn(step) {
    turn = turn.then(step).catch(() => {});
    return turn;
  }

  async function copiedInGuest(text) {
    if (!mayCopy) { return; }
    if (utf8Length(text) > max) {
      tell(`The text copied in the desktop is over ${max} bytes, the clipboard's limit: it was not taken.`, "limit");
      return;
    }
    panelText.value = text;
    await inTurn(async () => {
      try {
        await navigator.clipboard.writeText(text);
        seen = text;  // the desktop's own text: not sent back to it
        clear("fallback");
      } catch {
        tell("Text copied in the desktop is in the Clipboard panel (this browser does not let the page write to your clipboard).", "fallback");
      }
    });
  }

  async function sendIfChanged() {
    const rfb = liveRfb();
    if (!mayPaste || !rfb || rfb.viewOnly) { return; }
    const text = await readBrowserClipboard();
    if (text === null || text === seen) { return; }  // not allowed here, or not changed since
    seen = text;
    if (!text) { return; }
    if (utf8Length(text) > max) {
      tell(`Your clipboard holds over ${max} bytes, the clipboard's limit: it was not sent.`, "limit");
      return;
    }
    rfb.clipboardPasteFrom(text);
  }

  function lookAtBrowserClipboard() {
    inTurn(sendIfChanged).then(() => { looks += 1; root.dataset.clipboardLooks = String(looks); });
  }

  // The panel's text goes to the desktop; the browser's clipboard as it is now is what the
  // next look compares with, so going back to the console does not send it over the panel's.
  function sendPanelText() {
    const rfb = liveRfb();
    if (!rfb) { return; }
    rfb.clipboardPasteFrom(panelText.value);
    inTurn(async () => {
      const text = await readBrowserClipboard();
      if (text !== null) { seen = text; }
    });
  }

  document.getElementById("btn-clipboard").addEventListener("click", (event) => {
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
  });
  document.getElementById("btn-clip-send")?.addEventListener("click", sendPanelText);
  document.getElementById("btn-clip-type")?.addEventListener("click", () => {
    const rfb = liveRfb();
    if (rfb) { typeText(rfb, panelText.value); }
  });
  screen.addEventListener("focusin", lookAtBrowserClipboard);
  window.addEventListener("focus", () => {
    if (screen.contains(document.activeElement)) { lookAtBrowserClipboard(); }
  });
  return { copiedInGuest, refused: (reason) => tell(`Not copied: ${reason}.`, "refused") };
}
