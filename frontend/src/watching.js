// Helpdesk watching, on the user's page: who is watching, "End the watching", and the answer
// to a watcher asking for consent (the pool asks for it). Answers go back as text frames.
export function setUpWatching(tellPortal) {
  const box = document.getElementById("console-watchers");
  const text = document.getElementById("watchers-text");
  const consentBox = document.getElementById("console-consent");
  const consentText = document.getElementById("consent-text");
  const watchers = new Set();
  let token = null;
  let timer = null;

  function show() {
    const names = [...watchers].sort();
    box.hidden = names.length === 0;
    text.textContent = names.length
      ? `${names.join(", ")} (helpdesk) ${names.length > 1 ? "are" : "is"} watching your screen, view only.`
      : "";
  }

  function ask(notice) {
    token = notice.token;
    consentText.textContent = `${notice.by} (helpdesk) asks to watch your screen, view only.`;
    consentBox.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => { consentBox.hidden = true; }, notice.seconds * 1000);
  }

  function answer(allow) {
    if (token) { tellPortal({ consent: token, allow }); }
    token = null;
    consentBox.hidden = true;
  }

  document.getElementById("btn-consent-allow").addEventListener("click", () => answer(true));
  document.getElementById("btn-consent-refuse").addEventListener("click", () => answer(false));
  document.getElementById("btn-end-watching").addEventListener("click", () => tellPortal({ end_watching: true }));

  return function onWatchNotice(notice) {
    if (notice.notice === "watched") { watchers.add(notice.by); show(); }
    if (notice.notice === "unwatched") { watchers.delete(notice.by); show(); }
    if (notice.notice === "consent_request") { ask(notice); }
  };
}
