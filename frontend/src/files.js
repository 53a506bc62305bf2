// The console's Files panel: files dropped on the screen (or chosen) go to the desktop's
// Downloads folder, with the upload's progress; the desktop's Shared folder is listed and its
// files downloaded. The worker moves the bytes through the guest agent, so the panel polls
// for the outcome while anything is pending.

export function setUpFiles(root, screen, csrfToken) {
  const panel = document.getElementById("files-panel");
  if (!panel) { return; }
  const button = document.getElementById("btn-files");
  const choose = document.getElementById("files-choose");
  const progress = document.getElementById("files-progress");
  const statusText = document.getElementById("files-status");
  const sharedList = document.getElementById("files-shared");
  const transferList = document.getElementById("files-transfers");
  const base = root.dataset.filesUrl;
  const max = Number(root.dataset.fileMax);
  let pollTimer = null;

  const say = (text) => { statusText.textContent = text; };
  const post = (url, body) => fetch(url, {
    method: "POST", credentials: "same-origin", body,
    headers: { "X-CSRFToken": csrfToken() },
  });

  function item(text, action) {
    const li = document.createElement("li");
    li.append(text);
    if (action) { li.append(" ", action); }
    return li;
  }

  function render(state) {
    sharedList.replaceChildren(...(state.shared.length ? state.shared.map((file) => {
      if (file.refused) { return item(`${file.shown} (${file.size} bytes): ${file.refused}`); }
      const get = document.createElement("button");
      get.type = "button";
      get.textContent = "Download";
      get.dataset.name = file.name;
      get.addEventListener("click", () => fetchFile(file.name));
      return item(`${file.shown} (${file.size} bytes)`, get);
    }) : [item(state.shared_error || "Nothing in the Shared folder (or not looked at yet).")]));
    transferList.replaceChildren(...state.transfers.map((t) => {
      const words = t.direction === "in" ? "to Downloads" : "from Shared";
      const text = `${t.name} ${words}: ${t.status}${t.error ? ` (${t.error})` : ""}`;
      if (!t.url) { return item(text); }
      const link = document.createElement("a");
      link.href = t.url;
      link.textContent = "Save";
      link.dataset.name = t.name;
      return item(text, link);
    }));
    return state.transfers.some((t) => t.status === "pending");
  }

  async function refresh() {
    clearTimeout(pollTimer);
    const response = await fetch(base, { credentials: "same-origin" });
    const state = await response.json();
    if (!response.ok) { say(state.error || `HTTP ${response.status}`); return; }
    if (render(state) || !panel.hidden) { pollTimer = setTimeout(refresh, 1500); }
  }

  async function fetchFile(name) {
    const body = new FormData();
    body.append("name", name);
    const response = await post(`${base}fetch/`, body);
    const answer = await response.json();
    say(response.ok ? `Copying ${name} out of the desktop…` : answer.error);
    refresh();
  }

  function upload(file) {
    if (file.size > max) {
      say(`${file.name} is ${file.size} bytes; files take at most ${max}.`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", `${base}upload/?name=${encodeURIComponent(file.name)}&pass=${encodeURIComponent(root.dataset.uploadPass)}`);
      request.setRequestHeader("X-CSRFToken", csrfToken());
      request.setRequestHeader("Content-Type", "application/octet-stream");
      progress.hidden = false;
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) { progress.value = Math.floor((e.loaded / e.total) * 100); }
      });
      request.addEventListener("loadend", () => {
        progress.hidden = true;
        let answer = {};
        try { answer = JSON.parse(request.responseText); } catch { answer = {}; }
        say(request.status === 202 ? `${file.name} sent; copying it into the desktop…`
          : (answer.error || `The upload failed (HTTP ${request.status}).`));
        refresh();
        resolve();
      });
      request.send(file);
    });
  }

  async function uploadAll(files) {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    for (const file of files) { await upload(file); }
  }

  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) { post(`${base}list/`).then(refresh); }
  });
  document.getElementById("btn-files-refresh").addEventListener("click", () => post(`${base}list/`).then(refresh));
  choose.addEventListener("change", () => { uploadAll([...choose.files]); choose.value = ""; });
  screen.addEventListener("dragover", (event) => { event.preventDefault(); });
  screen.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) { uploadAll([...event.dataTransfer.files]); }
  });
}
