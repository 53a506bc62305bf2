// The SPICE console's clipboard, through the SPICE agent (spice-vdagent in the guest), which
// spice-html5 does not speak: text only (UTF-8), the CLIPBOARD selection, "by demand" as
// remote-viewer does it.
// - The guest grabs its clipboard (something was copied): the page asks for the text; it
//   arrives, possibly in several agent messages, and goes to the page's clipboard code.
// - The page offers a text (the panel's, or the browser's clipboard): it grabs the guest's
//   clipboard; when a program in the guest pastes, the agent asks and the page answers.
// The object this returns looks like the part of noVNC's RFB that clipboard.js uses.
import * as Messages from "@spice-project/spice-html5/src/spicemsg.js";
import { Constants } from "@spice-project/spice-html5/src/enums.js";

const UTF8_TEXT = 1;  // VD_AGENT_CLIPBOARD_UTF8_TEXT
const HEADER = 20;  // VDAgentMessage: protocol, type, opaque (8), size
const CLIPBOARD_TYPES = new Set([
  Constants.VD_AGENT_CLIPBOARD, Constants.VD_AGENT_CLIPBOARD_GRAB,
  Constants.VD_AGENT_CLIPBOARD_REQUEST, Constants.VD_AGENT_CLIPBOARD_RELEASE,
]);

// An agent message's body for spice-html5's send_agent_message: little-endian uint32s, then
// bytes.
class Body {
  constructor(words, bytes = new Uint8Array(0)) {
    this.words = words;
    this.bytes = bytes;
  }

  buffer_size() { return 4 * this.words.length + this.bytes.length; }

  to_buffer(buffer, at = 0) {
    const view = new DataView(buffer);
    this.words.forEach((word, i) => view.setUint32(at + 4 * i, word, true));
    new Uint8Array(buffer, at + 4 * this.words.length, this.bytes.length).set(this.bytes);
  }
}

export function spiceClipboard(connection, { copiedInGuest, mayCopy, mayPaste, max }) {
  let offered = null;  // the text the page offered the guest, until the guest grabs again
  let partial = null;  // an agent message arriving in several pieces: {type, bytes, length}

  const send = (type, body) => connection.send_agent_message(type, body);

  function handle(type, bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (type === Constants.VD_AGENT_CLIPBOARD_GRAB) {
      offered = null;
      const types = [];
      for (let at = 0; at + 4 <= bytes.length; at += 4) { types.push(view.getUint32(at, true)); }
      if (mayCopy && types.includes(UTF8_TEXT)) {
        send(Constants.VD_AGENT_CLIPBOARD_REQUEST, new Body([UTF8_TEXT]));
      }
    } else if (type === Constants.VD_AGENT_CLIPBOARD_REQUEST) {
      const text = offered !== null && mayPaste ? offered : "";
      send(Constants.VD_AGENT_CLIPBOARD, new Body([UTF8_TEXT], new TextEncoder().encode(text)));
    } else if (type === Constants.VD_AGENT_CLIPBOARD && bytes.length >= 4
               && view.getUint32(0, true) === UTF8_TEXT) {
      copiedInGuest(new TextDecoder().decode(bytes.subarray(4)));
    }
  }

  // Takes the agent's clipboard messages (true), leaves the others to spice-html5 (false).
  function take(data) {
    const chunk = new Uint8Array(data);
    if (partial) {
      partial.bytes.set(chunk.subarray(0, partial.length - partial.filled), partial.filled);
      partial.filled += Math.min(chunk.length, partial.length - partial.filled);
      if (partial.filled >= partial.length) {
        const { type, bytes } = partial;
        partial = null;
        handle(type, bytes);
      }
      return true;
    }
    if (chunk.length < HEADER) { return false; }
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const type = view.getUint32(4, true);
    if (!CLIPBOARD_TYPES.has(type)) { return false; }
    const length = view.getUint32(16, true);
    if (length > max + 64) { return true; }  // over the limit: dropped, as the proxy's VNC side does
    const body = chunk.subarray(HEADER);
    if (body.length >= length) {
      handle(type, body.subarray(0, length));
    } else {
      partial = { type, bytes: new Uint8Array(length), length, filled: body.length };
      partial.bytes.set(body);
    }
    return true;
  }

  const original = connection.process_channel_message.bind(connection);
  connection.process_channel_message = (msg) => {
    if (msg.type === Constants.SPICE_MSG_MAIN_AGENT_DATA && take(msg.data)) { return true; }
    return original(msg);
  };
  // The agent learns that this client does the clipboard "by demand".
  connection.announce_agent_capabilities = function announce(request) {
    const caps = (1 << Constants.VD_AGENT_CAP_MOUSE_STATE)
      | (1 << Constants.VD_AGENT_CAP_MONITORS_CONFIG) | (1 << Constants.VD_AGENT_CAP_REPLY)
      | (1 << Constants.VD_AGENT_CAP_CLIPBOARD_BY_DEMAND);
    this.send_agent_message(Constants.VD_AGENT_ANNOUNCE_CAPABILITIES,
      new Messages.VDAgentAnnounceCapabilities(request, caps));
  };

  return {
    viewOnly: false,
    clipboardPasteFrom(text) {
      if (!mayPaste) { return; }
      offered = text;
      send(Constants.VD_AGENT_CLIPBOARD_GRAB, new Body([UTF8_TEXT]));
    },
  };
}
