// Progressive enhancement only: every page works without this script.
(function () {
  "use strict";
  // Buttons that change money or access ask once more.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  // An order's page follows the order live: it long-polls the order's public status and reloads
  // when the order's version changes (a payment arrives, is confirmed, the order expires).
  var page = document.querySelector("[data-live-order]");
  if (!page || !window.fetch) return;
  var url = page.getAttribute("data-live-order");
  var version = page.getAttribute("data-version");
  function poll() {
    fetch(url + "?version=" + encodeURIComponent(version) + "&timeout_ms=25000", { credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && String(body.version) !== String(version)) { window.location.reload(); return; }
        setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
