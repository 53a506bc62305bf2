// Install media upload: the file goes as the request body, with the browser's progress.
(function () {
  "use strict";
  const form = document.getElementById("upload");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const say = (text) => { status.textContent = text; };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    const file = form.elements.file.files[0];
    if (!file) return say("Choose an ISO file.");
    if (file.size > Number(form.dataset.max)) {
      return say(`The file is ${file.size} bytes; uploads take at most ${form.dataset.max}.`);
    }
    const request = new XMLHttpRequest();
    request.open("POST", `${form.dataset.url}?name=${encodeURIComponent(name)}`);
    request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false;
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.floor((e.loaded / e.total) * 100);
      say(`${bar.value}% uploaded`);
    });
    request.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = {}; }
      if (request.status === 200) {
        say(`Added ${answer.name} (${answer.volume_id || "no label"}).`);
        window.location.assign(answer.url);
      } else {
        bar.hidden = true;
        say(answer.error || `The upload failed (HTTP ${request.status}).`);
      }
    });
    request.addEventListener("error", () => { bar.hidden = true; say("The upload failed: the connection broke."); });
    form.querySelector("input[type=submit]").disabled = true;
    request.send(file);
  });
})();
