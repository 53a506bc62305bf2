// The console's Files panel: files dropped on the screen (or chosen) go to the desktop's
// Downloads folder, with the upload's progress; the desktop's Shared folder is listed and its
// files downloaded with one click (the browser's download starts by itself once the worker
// has the file; the transfer's "Save" link stays as a fallback). The worker moves the bytes
// through the guest agent, so the panel polls until none of the transfers is pending, and
// the status line follows the ones this page started to their end.

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
  const started = new Map();  // transfer id -> its name: the ones this page started, until they end

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
    state.transfers.filter((t) => started.has(t.id) && t.status !== "pending").forEach(ended);
    return state.transfers.some((t) => t.status === "pending");
  }

  // A transfer this page started has ended: the status line says how, and a file copied out
  // of the desktop is saved at once.
  function ended(transfer) {
    started.delete(transfer.id);
    if (transfer.status !== "done") {
      say(`${transfer.name}: ${transfer.status}${transfer.error ? ` (${transfer.error})` : ""}.`);
    } else if (transfer.direction === "in") {
      say(`${transfer.name} is in the desktop's Downloads folder.`);
    } else {
      say(`${transfer.name} is downloaded (Save, under Recent transfers, downloads it again).`);
      if (transfer.url) { save(transfer.url, transfer.name); }
    }
  }

  function save(url, name) {
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
  }

  // Polls while a transfer is pending, one this page started has not ended or the panel is
  // open; a failed poll (the network, the portal restarting) is tried again.
  async function refresh() {
    clearTimeout(pollTimer);
    let pending = false;
    try {
      const response = await fetch(base, { credentials: "same-origin" });
      const state = await response.json();
      if (!response.ok) {
        say(state.error || `HTTP ${response.status}`);
        return;
      }
      pending = render(state);
    } catch {
      pending = started.size > 0;
    }
    clearTimeout(pollTimer);  // one poll at a time, however many asked meanwhile
    if (pending || started.size || !panel.hidden) { pollTimer = setTimeout(refresh, 1500); }
  }

  async function fetchFile(name) {
    const body = new FormData();
    body.append("name", name);
    const response = await post(`${base}fetch/`, body);
    const answer = await response.json().catch(() => ({}));
    if (response.ok) { started.set(answer.id, name); }
    say(response.ok ? `Copying ${name} out of the desktop; the download starts when it is done…`
      : (answer.error || `The portal refused (HTTP ${response.status}).`));
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
        if (request.status === 202) { started.set(answer.id, file.name); }
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
