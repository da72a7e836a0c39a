/* Kassa checkout: live status (long polling), countdown, copy button, test buttons, and the
   hand-over to a card gateway's page.
   The page works without this script; it only makes the page update in place. Its words come
   translated from the page (data-text-* on <main>). */
(function () {
  "use strict";
  var onward = document.querySelector("form[data-autosubmit]");
  if (onward) {  /* the gateway's page: go on at once (the button is there without a script) */
    onward.submit();
    return;
  }
  var main = document.querySelector("main[data-order]");
  if (!main) return;
  var statusUrl = main.getAttribute("data-status-url");
  var panelUrl = main.getAttribute("data-panel-url");
  var version = parseInt(main.getAttribute("data-version"), 10);
  var panelBox = document.getElementById("panel");
  var statusBox = document.getElementById("status");
  var titleEl = document.getElementById("status-title");
  var messageEl = document.getElementById("status-message");
  var STOP = {};
  var tick = null;
  var leaving = false;
  var failures = 0;

  function word(name) { return main.getAttribute("data-text-" + name) || ""; }

  function setStatus(tone, title, message) {
    statusBox.className = "status status--" + tone;
    titleEl.textContent = title;
    messageEl.textContent = message || "";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function format(s) {  /* as the server's format_duration: digits only, hours unbounded */
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), rest = pad(s % 60);
    if (h) return h + ":" + pad(m) + ":" + rest;
    return m + ":" + rest;
  }

  function startCountdown() {
    if (tick) { clearInterval(tick); tick = null; }
    var el = panelBox.querySelector("[data-seconds-left]");
    if (!el) return;
    var deadline = Date.now() + parseInt(el.getAttribute("data-seconds-left"), 10) * 1000;
    function update() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      el.textContent = left === 0 ? word("time-up") : format(left);
      if (left === 0 && tick) { clearInterval(tick); tick = null; }
    }
    update();
    tick = setInterval(update, 1000);
  }

  function enhance() {
    var buttons = panelBox.querySelectorAll("[data-copy]");
    for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
    startCountdown();
  }

  function refreshPanel() {
    return fetch(panelUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("panel " + r.status); return r.text(); })
      .then(function (html) {
        var active = document.activeElement;
        var activeId = active && panelBox.contains(active) ? active.id : null;
        panelBox.innerHTML = html;  // server-rendered, escaped, same origin
        enhance();
        if (activeId) (document.getElementById(activeId) || titleEl).focus();
      });
  }

  function apply(s) {
    version = s.version;
    setStatus(s.tone, s.title, s.message);
    if (s.redirect_url && /^https?:\/\//i.test(s.redirect_url)) {
      leaving = true;
      setStatus("success", word("paid"), word("leaving"));
      setTimeout(function () { window.location.assign(s.redirect_url); }, 1500);
    }
    return refreshPanel();
  }

  function poll() {
    if (leaving) return;
    var started = Date.now();
    var join = statusUrl.indexOf("?") < 0 ? "?" : "&";
    fetch(statusUrl + join + "version=" + version + "&timeout_ms=25000", {
      cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (r) {
        if (r.status === 404) throw STOP;
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (s) {
        failures = 0;
        if (s.version !== version) return apply(s).then(poll);
        setTimeout(poll, Date.now() - started < 1000 ? 1000 : 0);  // never spin
      })
      .catch(function (err) {
        if (err === STOP) return;
        failures += 1;
        setTimeout(poll, Math.min(30000, 1000 * Math.pow(2, failures - 1)));
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    var result = button.parentNode.querySelector("[data-copy-result]");
    if (!source) return;
    function done(ok) {
      if (result) result.textContent = ok ? word("copied") : word("copy-failed");
    }
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try { return document.execCommand("copy"); } catch (e) { return false; }
    }
    var text = source.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(fallback()); });
    } else {
      done(fallback());
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-fetch")) return;
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.redirect_url && /^https?:\/\//i.test(answer.redirect_url)) {
          window.location.assign(answer.redirect_url);
        } else if (!answer.ok) {
          setStatus("warning", word("not-done"), answer.message);
        }
      })
      .catch(function () { setStatus("warning", word("not-done"), word("failed")); })
      .then(function () { if (button && document.body.contains(button)) button.disabled = false; });
  });

  document.documentElement.classList.add("js");
  enhance();
  poll();
})();
