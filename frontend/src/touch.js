// Phones and tablets: noVNC turns taps and gestures into the mouse (tap: click, two-finger
// tap: right click, two-finger drag: wheel, long press: drag); the device's own keyboard
// types through a hidden field, as keysyms (like "Type it").
import { KEYSYM_BACKSPACE, KEYSYM_RETURN, pressKeysym, typeText } from "./keys.js";

// The field keeps one space before the caret, so that Backspace has something to delete
// (an empty field reports nothing) and every key shows up as an input event.
const SENTINEL = " ";

export function setUpTouch(liveRfb) {
  const touchInput = document.getElementById("touch-input");
  const keyboardButton = document.getElementById("btn-keyboard");
  const reset = () => {
    touchInput.value = SENTINEL;
    touchInput.setSelectionRange(1, 1);
  };
  keyboardButton.hidden = !(navigator.maxTouchPoints > 0);
  keyboardButton.addEventListener("click", () => { reset(); touchInput.focus(); });
  touchInput.addEventListener("input", (event) => {
    const rfb = liveRfb();
    if (rfb && (event.inputType === "deleteContentBackward")) {
      pressKeysym(rfb, KEYSYM_BACKSPACE);
    } else if (rfb && (event.inputType === "insertLineBreak" || event.inputType === "insertParagraph")) {
      pressKeysym(rfb, KEYSYM_RETURN);
    } else if (rfb && event.data) {
      typeText(rfb, event.data);
    }
    reset();
  });
}
