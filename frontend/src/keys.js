// Keys sent as keysyms, which the hypervisor maps to keys with its keymap: "Type it" and the
// device keyboard of phones and tablets. The hypervisor does not add Shift by itself, so
// characters that need Shift on its (US) keymap are sent with Shift held.
const SPECIAL_KEYSYMS = { "\n": 0xff0d, "\t": 0xff09 };
const SHIFT = 0xffe1;
const SHIFTED = new Set('~!@#$%^&*()_+{}|:"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ');
export const KEYSYM_BACKSPACE = 0xff08;
export const KEYSYM_RETURN = 0xff0d;

function keysymOf(char) {
  const code = char.codePointAt(0);
  return SPECIAL_KEYSYMS[char] ?? (code < 0x100 ? code : 0x01000000 + code);
}

export function pressKeysym(rfb, keysym) {
  rfb.sendKey(keysym, null, true);
  rfb.sendKey(keysym, null, false);
}

export function typeText(rfb, text) {
  for (const char of text) {
    const shifted = SHIFTED.has(char);
    if (shifted) { rfb.sendKey(SHIFT, "ShiftLeft", true); }
    pressKeysym(rfb, keysymOf(char));
    if (shifted) { rfb.sendKey(SHIFT, "ShiftLeft", false); }
  }
}
