// pgcheckpoint inspector: the only script. It follows a running thread: every
// two seconds it asks for the head checkpoint of the thread shown and reloads
// the page when a new one arrived (uncheck "live" to stop). Everything else is
// plain HTML forms and <details>.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-live");
  if (!url) { return; }
  var shown = body.getAttribute("data-head") || "";
  var box = document.getElementById("live");
  var note = document.getElementById("live-note");
  function poll() {
    if (box && !box.checked) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && (data.head || "") !== shown) {
          if (note) { note.hidden = false; }
          window.location.reload();
        }
      })
      .catch(function () { /* the server is away; try again at the next tick */ });
  }
  window.setInterval(poll, 2000);
})();
