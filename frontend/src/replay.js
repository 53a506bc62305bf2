// Replays a console recording: the frames the proxy sent the browser, fed to noVNC through a
// channel that plays them back on their timestamps, at any speed. noVNC's decoders keep
// state (zlib streams), so seeking back starts again from the first frame, fast-forwarding.
import RFB from "@novnc/novnc";

const MAGIC = "VDIREC1\n";
const root = document.getElementById("replay");
const screen = document.getElementById("screen");
const stateText = document.getElementById("replay-state");
const playButton = document.getElementById("btn-play");
const speedSelect = document.getElementById("replay-speed");
const seek = document.getElementById("replay-seek");
const timeText = document.getElementById("replay-time");

function parse(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  if (new TextDecoder().decode(bytes.subarray(0, MAGIC.length)) !== MAGIC) {
    throw new Error("not a console recording");
  }
  const frames = [];
  let at = MAGIC.length;
  while (at + 8 <= bytes.length) {
    const ms = view.getUint32(at);
    const length = view.getUint32(at + 4);
    if (at + 8 + length > bytes.length) { break; }
    frames.push({ ms, data: bytes.slice(at + 8, at + 8 + length).buffer });
    at += 8 + length;
  }
  return frames;
}

// What noVNC needs of a WebSocket (see Websock.attach); what it sends goes nowhere.
class PlaybackChannel {
  constructor() {
    this.binaryType = "arraybuffer";
    this.protocol = "";
    this.readyState = "open";
    this.onerror = null;
    this.onmessage = null;
    this.onopen = null;
    this.onclose = null;
  }
  send() {}
  close() { this.readyState = "closed"; }
  deliver(data) { if (this.onmessage) { this.onmessage({ data }); } }
}

const clock = (ms) => {
  const seconds = Math.floor(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
};

class Player {
  constructor(frames) {
    this.frames = frames;
    this.duration = frames.length ? frames[frames.length - 1].ms : 0;
    this.speed = 1;
    this.playing = true;
    this.restart();
  }

  restart() {
    if (this.rfb) { this.rfb.disconnect(); }
    screen.replaceChildren();
    this.channel = new PlaybackChannel();
    this.rfb = new RFB(screen, this.channel, { shared: true });
    this.rfb.viewOnly = true;
    this.rfb.scaleViewport = true;
    this.next = 0;
    this.position = 0;
  }

  // Feed every frame up to ``ms`` at once (seeking), then go on in time.
  feedUntil(ms) {
    while (this.next < this.frames.length && this.frames[this.next].ms <= ms) {
      this.channel.deliver(this.frames[this.next].data);
      this.next += 1;
    }
    this.position = ms;
    this.show();
  }

  seekTo(ms) {
    if (ms < this.position) { this.restart(); }
    this.feedUntil(ms);
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.playing) { return; }
    if (this.next >= this.frames.length) {
      this.position = this.duration;
      this.show();
      stateText.textContent = "Finished";
      root.dataset.state = "finished";
      return;
    }
    const due = this.frames[this.next].ms;
    this.timer = setTimeout(() => {
      this.feedUntil(due);
      this.schedule();
    }, Math.max(0, (due - this.position) / this.speed));
  }

  show() {
    seek.value = String(this.position);
    timeText.textContent = `${clock(this.position)} / ${clock(this.duration)}`;
  }
}

async function main() {
  let frames;
  try {
    const response = await fetch(root.dataset.url, { credentials: "same-origin" });
    if (!response.ok) { throw new Error(`HTTP ${response.status}`); }
    frames = parse(await response.arrayBuffer());
  } catch (error) {
    stateText.textContent = `The recording could not be loaded: ${error.message}.`;
    return;
  }
  const player = new Player(frames);
  seek.max = String(player.duration);
  stateText.textContent = "Playing";
  root.dataset.state = "playing";
  player.schedule();
  playButton.addEventListener("click", () => {
    player.playing = !player.playing;
    playButton.textContent = player.playing ? "Pause" : "Play";
    stateText.textContent = player.playing ? "Playing" : "Paused";
    root.dataset.state = player.playing ? "playing" : "paused";
    player.schedule();
  });
  speedSelect.addEventListener("change", () => {
    player.speed = Number(speedSelect.value);
    player.schedule();
  });
  seek.addEventListener("input", () => player.seekTo(Number(seek.value)));
  window.vdiReplay = player;
}

main();
