// The clipboard, both ways, as the pool allows (the proxy enforces it; this page only avoids
// asking for what would be refused). Text copied in the desktop goes to the browser's
// clipboard (Clipboard API) and the panel; the browser's clipboard goes to the desktop when
// the console gets the focus. The panel can also type its text as keysyms ("Type it").
import { typeText } from "./keys.js";

const utf8Length = (text) => new TextEncoder().encode(text).length;

export function setUpClipboard(root, screen, liveRfb) {
  const panel = document.getElementById("clipboard-panel");
  const panelText = document.getElementById("clipboard-text");
  const note = document.getElementById("console-clipboard");
  const policy = root.dataset.clipboard;  // both, to_guest, from_guest or off
  const max = Number(root.dataset.clipboardMax);
  const mayPaste = policy === "both" || policy === "to_guest";
  const mayCopy = policy === "both" || policy === "from_guest";
  let lastShared = null;
  let noteTimer = null;

  function tell(text) {
    note.textContent = text;
    note.hidden = !text;
    clearTimeout(noteTimer);
    if (text) { noteTimer = setTimeout(() => { note.hidden = true; }, 10000); }
  }

  async function copiedInGuest(text) {
    if (!mayCopy) { return; }
    if (utf8Length(text) > max) {
      tell(`The text copied in the desktop is over ${max} bytes, the clipboard's limit: it was not taken.`);
      return;
    }
    panelText.value = text;
    lastShared = text;
    try {
      await navigator.clipboard.writeText(text);
      tell("");
    } catch {
      tell("Text copied in the desktop is in the Clipboard panel (this browser does not let the page write to your clipboard).");
    }
  }

  async function pasteIntoGuest() {
    const rfb = liveRfb();
    if (!mayPaste || !rfb || rfb.viewOnly) { return; }
    let text;
    try {
      text = await navigator.clipboard.readText();
    } catch {
      return;  // not allowed here: the Clipboard panel still works
    }
    if (!text || text === lastShared) { return; }
    if (utf8Length(text) > max) {
      tell(`Your clipboard holds over ${max} bytes, the clipboard's limit: it was not sent.`);
      return;
    }
    lastShared = text;
    rfb.clipboardPasteFrom(text);
  }

  document.getElementById("btn-clipboard").addEventListener("click", (event) => {
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
  });
  document.getElementById("btn-clip-send")?.addEventListener("click", () => {
    const rfb = liveRfb();
    if (rfb) { lastShared = panelText.value; rfb.clipboardPasteFrom(panelText.value); }
  });
  document.getElementById("btn-clip-type")?.addEventListener("click", () => {
    const rfb = liveRfb();
    if (rfb) { typeText(rfb, panelText.value); }
  });
  screen.addEventListener("focusin", pasteIntoGuest);
  window.addEventListener("focus", () => { if (screen.contains(document.activeElement)) { pasteIntoGuest(); } });
  return { copiedInGuest, refused: (reason) => tell(`Not copied: ${reason}.`) };
}
