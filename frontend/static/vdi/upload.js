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
    request.open("POST", `${form.dataset.url}?name=${encodeURIComponent(name)}&pass=${encodeURIComponent(form.dataset.pass)}`);
    request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false;
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.floor((e.loaded / e.total) * 100);
      say(`${bar.value}% uploaded`);
    });
    const submit = form.querySelector("input[type=submit]");
    const failed = (text) => { bar.hidden = true; submit.disabled = false; say(text); };
    request.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = {}; }
      if (request.status === 200) {
        say(`Added ${answer.name} (${answer.volume_id || "no label"}).`);
        window.location.assign(answer.url);
      } else {
        // The portal says why in words; an answer without them came from before the page's
        // view (the server's own error page): its log has the cause.
        failed(answer.error || `The upload failed: the server answered HTTP ${request.status} ` +
               "without saying why; the portal's log has the cause.");
      }
    });
    request.addEventListener("error", () => failed("The upload failed: the connection broke."));
    submit.disabled = true;
    request.send(file);
  });
})();
