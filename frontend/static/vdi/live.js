// Live pages: the server says what changed over /ws/live/; parts of the page that show it
// ([data-live]) are refreshed once (htmx's "vdi:changed" event). A new thumbnail of a desktop's
// screen (the dashboard) is a "vdi:thumbnail" event of its own. Nothing polls. After a lost
// connection it reconnects with a growing pause and refreshes once, for what it missed.
(() => {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/live/`;
  let pause = 1000;
  let pending = null;

  function changed(detail) {
    if (pending) { return; }
    pending = setTimeout(() => {  // a burst of changes is one refresh
      pending = null;
      document.body.dispatchEvent(new CustomEvent("vdi:changed", { detail }));
    }, 100);
  }

  function connect(isReconnect) {
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      pause = 1000;
      document.body.dataset.live = "on";
      if (isReconnect) { changed({ kind: "reconnected" }); }
    });
    socket.addEventListener("message", (event) => {
      const detail = JSON.parse(event.data);
      if (detail.kind === "thumbnail") {  // a new picture of one screen: only it is fetched
        document.body.dispatchEvent(new CustomEvent("vdi:thumbnail", { detail }));
        return;
      }
      changed(detail);
    });
    socket.addEventListener("close", (event) => {
      document.body.dataset.live = "off";
      if (event.code === 4401) { return; }  // signed out: the page's next request says so
      // Pages of a restarted server come back spread out, not all at once.
      setTimeout(() => connect(true), pause * (0.5 + Math.random()));
      pause = Math.min(pause * 2, 30000);
    });
  }

  // Countdowns count down here, without asking the server.
  function tick() {
    for (const countdown of document.querySelectorAll(".countdown[data-deadline]")) {
      const left = Math.max(0, Math.floor((Date.parse(countdown.dataset.deadline) - Date.now())
                                          / 60000));
      const minutes = countdown.querySelector(".minutes");
      if (minutes) { minutes.textContent = String(left); }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    connect(false);
    setInterval(tick, 15000);
  });
})();
