// Shows the event's time in the visitor's own zone; without script the page shows UTC and the
// event's zone. A static file (the page's CSP allows no inline script).
(function () {
  var script = document.currentScript;
  var label = script ? script.getAttribute("data-label") : "";
  var lang = document.documentElement.lang || undefined;
  document.querySelectorAll("time.yours").forEach(function (el) {
    var start = new Date(el.getAttribute("datetime"));
    if (isNaN(start)) { return; }
    var opts = { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" };
    var text = start.toLocaleString(lang, opts);
    var endAttr = el.getAttribute("data-end");
    if (endAttr) {
      var end = new Date(endAttr);
      if (!isNaN(end)) { text += " – " + end.toLocaleString(lang, opts); }
    }
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    el.textContent = text + " (" + label + (zone ? ", " + zone : "") + ")";
    el.hidden = false;
  });
})();
