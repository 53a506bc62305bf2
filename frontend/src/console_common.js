// What the VNC and SPICE console pages share: the CSRF token, the state line, the problem
// line, the console ticket (asked for early by the page itself) and the portal's diagnosis.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export function statusLine(root) {
  const stateText = document.getElementById("console-state");
  const problem = document.getElementById("console-problem");
  return {
    setState(text, kind = "info") {
      stateText.textContent = text;
      stateText.dataset.kind = kind;
      root.dataset.state = kind;
    },
    showProblem(text) {
      problem.textContent = text;
      problem.hidden = !text;
    },
  };
}

export async function getTicket(ticketUrl) {
  // The first ticket was asked for by the page itself, while this code loaded.
  const early = window.vdiTicket;
  window.vdiTicket = null;
  return ticketFrom(await (early || fetch(ticketUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  })));
}

// The ticket in the portal's answer, or an error with its reason.
export async function ticketFrom(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `The portal refused a console ticket (HTTP ${response.status}).`);
  }
  return body;
}

export async function diagnose(diagnoseUrl) {
  const url = `${diagnoseUrl}?origin=${encodeURIComponent(location.origin)}`;
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

// The console's menu: a handle at the top of the screen opens it over the screen (nothing
// moves, so the desktop keeps its resolution); so does Ctrl+Alt+Shift while the desktop has
// the keyboard (as in Guacamole). Choosing a tool, Escape or going back to the screen closes
// it. It stays open while the console is disconnected (Reconnect is in it).
const MODIFIERS = ["Control", "Alt", "Shift"];

export function setUpMenu(screen) {
  const menu = document.getElementById("console-menu");
  const handle = document.getElementById("btn-menu");
  const show = (open) => {
    menu.toggleAttribute("data-open", open);
    handle.setAttribute("aria-expanded", String(open));
  };
  handle.addEventListener("click", () => show(!menu.hasAttribute("data-open")));
  menu.querySelectorAll(".console-tools button").forEach((button) => {
    button.addEventListener("click", () => show(false));
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") { return; }
    show(false);
    handle.focus();
  });
  screen.addEventListener("pointerdown", () => show(false));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey && event.altKey && event.shiftKey && MODIFIERS.includes(event.key)) {
      show(true);
      handle.focus();  // the desktop lets go of the keys it held
    }
  }, true);
  return show;
}
