/* paygbot's dashboard in Telegram: reads the launch data and theme Telegram puts in the URL fragment
   (tgWebAppData, tgWebAppThemeParams), opens a session with the launch data, then sends the session's
   token and CSRF token with every htmx request. No Telegram script is loaded (no CDN): the few events the
   page sends Telegram (ready, expand) go the way Telegram's own script sends them. */
(function () {
  "use strict";
  var store = window.sessionStorage;
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var initData = fragment.get("tgWebAppData");
  var theme = fragment.get("tgWebAppThemeParams");
  // Telegram passes the fragment once; a reload inside the app keeps what it said.
  if (initData) { store.setItem("paygbot.initData", initData); } else { initData = store.getItem("paygbot.initData") || ""; }
  if (theme) { store.setItem("paygbot.theme", theme); } else { theme = store.getItem("paygbot.theme"); }
  var auth = null;
  var root = document.documentElement;

  function applyTheme(params) {
    if (!params || typeof params !== "object") { return; }
    Object.keys(params).forEach(function (key) {
      var value = String(params[key]);
      if (/^#[0-9a-fA-F]{3,8}$/.test(value)) { root.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value); }
    });
  }
  try { applyTheme(JSON.parse(theme || "null")); } catch (e) { /* no theme: the page's own colours */ }

  function postEvent(type, data) {
    var payload = JSON.stringify(data || {});
    try {
      if (window.TelegramWebviewProxy) { window.TelegramWebviewProxy.postEvent(type, payload); }
      else if (window.external && "notify" in window.external) { window.external.notify(JSON.stringify({eventType: type, eventData: data || {}})); }
      else if (window.parent !== window) { window.parent.postMessage(JSON.stringify({eventType: type, eventData: data || {}}), "*"); }
    } catch (e) { /* outside Telegram: nobody to tell */ }
  }
  window.addEventListener("message", function (event) {
    try {
      var message = JSON.parse(event.data);
      if (message.eventType === "theme_changed" && message.eventData) { applyTheme(message.eventData.theme_params); }
    } catch (e) { /* not Telegram's */ }
  });

  function app() { return document.getElementById("app"); }

  function refuse(message) {
    var box = document.createElement("div");
    box.className = "refused"; box.id = "refused"; box.setAttribute("role", "alert");
    box.textContent = message;
    app().replaceChildren(box);
  }

  function openSession(first) {
    return fetch("/app/session", {method: "POST", body: new URLSearchParams({init_data: initData}), credentials: "omit"})
      .then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, body: body}; });
      })
      .then(function (answer) {
        if (!answer.ok) { auth = null; refuse(answer.body.message || ""); return; }
        auth = answer.body;
        root.lang = auth.language || "en";
        // a session lives a while; the launch data longer (an hour): renew before it ends
        window.setTimeout(function () { openSession(false); }, Math.max(60, auth.lifetime * 0.8) * 1000);
        if (first) { htmx.ajax("GET", "/app/view/frame", {target: "#app", swap: "innerHTML"}); }
      })
      .catch(function () { if (first) { refuse("…"); } });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    if (auth) {
      event.detail.headers["Authorization"] = "Bearer " + auth.token;
      event.detail.headers["X-CSRF-Token"] = auth.csrf;
    }
  });
  // The server's refusals and "not found" are pages too: show them where the answer was going.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && event.detail.xhr.responseText) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  // A page swapped in is marked ready once htmx has bound its controls (what a test waits for before it types).
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target) { return; }
    target.querySelectorAll(".page").forEach(function (page) { page.classList.add("ready"); });
    if (target.classList.contains("page")) { target.classList.add("ready"); }
  });
  // The tab shown is marked.
  document.addEventListener("click", function (event) {
    var tab = event.target.closest(".tabs button");
    if (!tab) { return; }
    document.querySelectorAll(".tabs button").forEach(function (other) { other.classList.toggle("on", other === tab); });
  });
  // CSV exports. Inside Telegram (Bot API 8.0 and later) Telegram's app downloads the file itself
  // (web_app_request_file_download) from a URL with a one-minute ticket; elsewhere the page fetches it with
  // the session's headers and saves it.
  var version = parseFloat(fragment.get("tgWebAppVersion") || store.getItem("paygbot.version") || "0");
  if (fragment.get("tgWebAppVersion")) { store.setItem("paygbot.version", fragment.get("tgWebAppVersion")); }
  var inTelegram = !!window.TelegramWebviewProxy || (window.external && "notify" in window.external) || window.parent !== window;

  function showNote(note, text) { if (note) { note.textContent = text; note.hidden = false; } }

  function telegramDownload(form, note) {
    var body = new URLSearchParams(new FormData(form));
    body.set("kind", form.getAttribute("data-export").split("/").pop());
    fetch("/app/act/ticket", {method: "POST", body: body, credentials: "omit",
                              headers: {"Authorization": "Bearer " + auth.token, "X-CSRF-Token": auth.csrf}})
      .then(function (response) { return response.json().then(function (answer) { return {ok: response.ok, answer: answer}; }); })
      .then(function (result) {
        if (!result.ok) { showNote(note, result.answer.message || ""); return; }
        postEvent("web_app_request_file_download", {url: result.answer.url, file_name: result.answer.file_name});
        if (note) { note.hidden = true; }
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-export]");
    if (!form || !auth) { return; }
    event.preventDefault();
    var note = document.getElementById("export-note");
    if (inTelegram && version >= 8) { telegramDownload(form, note); return; }
    var url = form.getAttribute("data-export") + "?" + new URLSearchParams(new FormData(form)).toString();
    fetch(url, {headers: {"Authorization": "Bearer " + auth.token}, credentials: "omit"}).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          showNote(note, page.body.textContent.trim());
        });
      }
      var disposition = response.headers.get("Content-Disposition") || "";
      var name = (disposition.match(/filename="([^"]+)"/) || [null, "paygbot.csv"])[1];
      return response.blob().then(function (blob) {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = name;
        document.body.appendChild(link);
        link.click();
        window.setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
        if (note) { note.hidden = true; }
      });
    });
  });

  postEvent("web_app_ready");
  postEvent("web_app_expand");
  openSession(true);
})();
