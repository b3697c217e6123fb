// Management › Test delivery: asks the page's session for a short-lived token (a CSRF-checked
// POST), opens /api/live/delivery/<target>?token=… as an EventSource and lists each stage as the
// server sends it. The stream ends with a "completed" stage; the script closes it then, since
// an EventSource would otherwise reconnect and run the test again.
(function () {
  "use strict";

  var LABELS = {
    mxLookupStart: "MX lookup", mxLookupSuccess: "MX records found", mxLookupError: "MX lookup failed",
    mtaStsFetchStart: "MTA-STS policy", mtaStsFetchSuccess: "MTA-STS policy found",
    mtaStsFetchError: "MTA-STS policy could not be fetched", mtaStsNotFound: "No MTA-STS policy",
    tlsRptLookupStart: "TLS reporting (TLS-RPT)", tlsRptLookupSuccess: "TLS-RPT record found",
    tlsRptLookupError: "TLS-RPT record is not valid", tlsRptNotFound: "No TLS-RPT record",
    deliveryAttemptStart: "Trying mail exchanger", mtaStsVerifySuccess: "The MTA-STS policy allows this exchanger",
    mtaStsVerifyError: "The MTA-STS policy does not allow this exchanger",
    tlsaLookupStart: "TLSA (DANE) lookup", tlsaLookupSuccess: "TLSA records found (DNSSEC)",
    tlsaNotFound: "No usable TLSA records", tlsaLookupError: "TLSA lookup failed",
    ipLookupStart: "Address lookup", ipLookupSuccess: "Addresses found", ipLookupError: "Address lookup failed",
    connectionStart: "Connecting to", connectionSuccess: "Connected", connectionError: "Connection failed",
    readGreetingStart: "Waiting for the greeting", readGreetingSuccess: "Greeting received",
    readGreetingError: "Greeting failed", ehloStart: "EHLO", ehloSuccess: "EHLO accepted", ehloError: "EHLO refused",
    startTlsStart: "STARTTLS", startTlsSuccess: "TLS established, certificate verified",
    startTlsError: "STARTTLS failed", daneVerifySuccess: "The certificate matches the TLSA records",
    daneVerifyError: "The certificate does not match the TLSA records", mailFromStart: "MAIL FROM:<>",
    mailFromSuccess: "MAIL FROM accepted", mailFromError: "MAIL FROM refused", rcptToStart: "RCPT TO",
    rcptToSuccess: "Recipient accepted", rcptToError: "Recipient refused", quitStart: "RSET and QUIT",
    quitCompleted: "Disconnected", completed: "Test finished", error: "The test failed"
  };

  function outcome(type) {
    if (/Error$/.test(type) || type === "error") { return "error"; }
    if (/NotFound$/.test(type)) { return "warning"; }
    if (/Start$/.test(type)) { return "start"; }
    return "ok";
  }

  function details(stage) {
    var parts = [];
    if (stage.domain) { parts.push(stage.domain); }
    if (stage.hostname) { parts.push(stage.hostname); }
    if (stage.remoteIp) { parts.push(stage.remoteIp); }
    if (stage.mxs) {
      parts.push(stage.mxs.map(function (mx) { return mx.preference + " " + mx.exchanges.join(", "); }).join("; "));
    }
    if (stage.remoteIps) { parts.push(stage.remoteIps.join(", ")); }
    if (stage.policy) {
      parts.push("mode " + stage.policy.mode + (stage.policy.mx.length ? ", mx " + stage.policy.mx.join(", ") : ""));
    }
    if (stage.rua) {
      parts.push(stage.rua.map(function (r) { return r.email || r.url; }).join(", "));
    }
    if (stage.record && stage.record.entries) { parts.push(stage.record.entries.length + " record(s)"); }
    if (stage.reason) { parts.push(stage.reason); }
    if (typeof stage.elapsed === "number") { parts.push(stage.elapsed + " ms"); }
    return parts.join(" · ");
  }

  function show(list, stage) {
    var item = document.createElement("li");
    item.className = "stage stage-" + outcome(stage.type);
    item.dataset.type = stage.type;
    var label = document.createElement("strong");
    label.textContent = LABELS[stage.type] || stage.type;
    item.appendChild(label);
    var text = details(stage);
    if (text) {
      var more = document.createElement("span");
      more.className = "stage-details";
      more.textContent = " " + text;
      item.appendChild(more);
    }
    list.appendChild(item);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("delivery-test-form");
    if (!form) { return; }
    var list = document.getElementById("delivery-stages");
    var status = document.getElementById("delivery-status");
    var button = document.getElementById("delivery-run");
    var source = null;

    function finish(message) {
      if (source) { source.close(); source = null; }
      button.disabled = false;
      status.textContent = message;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var target = form.elements.target.value.trim();
      if (!target) { return; }
      if (source) { source.close(); source = null; }
      list.textContent = "";
      button.disabled = true;
      status.textContent = "Running the test of " + target + "…";
      fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
        .then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
            return body.token;
          });
        })
        .then(function (token) {
          var url = "/api/live/delivery/" + encodeURIComponent(target) + "?timeout=" +
            encodeURIComponent(form.elements.timeout.value || "30") + "&token=" + encodeURIComponent(token);
          source = new EventSource(url);
          source.addEventListener("event", function (message) {
            JSON.parse(message.data).forEach(function (stage) {
              show(list, stage);
              if (stage.type === "completed") { finish("Finished."); }
            });
          });
          source.onerror = function () {
            // Before "completed": refused (a bad target, no permission) or cut off.
            if (source) { finish("The stream ended before the test finished."); }
          };
        })
        .catch(function (error) { finish("Could not start the test: " + error.message); });
    });
  });
}());
