// The OAuth login and device pages: credentials go to POST /api/auth as JSON; on success the
// browser is sent to the client's redirect URI with the code, the state and the issuer (RFC 9207).
(function () {
  "use strict";
  var form = document.getElementById("login");
  var mode = form.dataset.mode;
  var params = new URLSearchParams(window.location.search);
  var error = document.getElementById("error");
  var done = document.getElementById("done");

  function show(el, text) { el.textContent = text; el.hidden = false; }

  // Code only where the redirect URI reaches the page as an absolute URI (the server checked it);
  // anything else is never navigated to.
  function destination() {
    try { return new URL(params.get("redirect_uri") || ""); } catch (e) { return null; }
  }

  if (mode === "code" && !destination()) {
    show(error, "Start signing in from your application: this page needs a redirect_uri.");
    form.hidden = true;
    return;
  }

  var busy = false;
  var submit = document.getElementById("submit");

  function otp() { return form.mfaToken.value.replace(/\s+/g, ""); }

  function send(type) {
    if (busy) { return; }
    busy = true;
    submit.disabled = true;
    error.hidden = true;
    var body = {
      type: type,
      accountName: form.accountName.value,
      accountSecret: form.accountSecret.value,
      mfaToken: otp() || null
    };
    if (mode === "device") {
      body.code = form.code.value;
    } else {
      ["clientId:client_id", "redirectUri:redirect_uri", "scope:scope", "state:state", "nonce:nonce",
       "codeChallenge:code_challenge", "codeChallengeMethod:code_challenge_method"].forEach(function (pair) {
        var p = pair.split(":");
        var value = params.get(p[1]);
        if (value !== null) { body[p[0]] = value; }
      });
    }
    fetch("/api/auth", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        busy = false;
        submit.disabled = false;
        var r = res.body;
        if (!res.ok) { show(error, r.detail || "The request was refused."); return; }
        if (r.type === "mfaRequired") {
          document.getElementById("mfa").hidden = false;
          form.mfaToken.required = true;
          form.mfaToken.focus();
          show(error, "Enter the one-time code from your authenticator.");
        } else if (r.type === "authenticated") {
          var target = destination();
          target.searchParams.set("code", r.client_code);
          if (params.get("state") !== null) { target.searchParams.set("state", params.get("state")); }
          target.searchParams.set("iss", r.iss || window.location.origin);
          if (target.protocol === "https:" || target.protocol === "http:") {
            window.location.assign(target.toString());
          } else if (/^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(target.protocol)) {
            // A native app's private-use scheme (RFC 8252 §7.1), which only a registered client
            // can have: the person opens it, the script does not navigate there.
            form.hidden = true;
            var link = document.getElementById("open-app-link");
            link.href = target.toString();
            document.getElementById("open-app").hidden = false;
            show(done, "Signed in. Open the application to finish.");
          } else {
            show(error, "The application's redirect URI cannot be opened.");
          }
        } else if (r.type === "verified") {
          form.hidden = true;
          show(done, "Device authorized. You can close this page and return to your device.");
        } else if (r.type === "denied") {
          form.hidden = true;
          show(done, "The request was denied. The device will not get access.");
        } else {
          if (!document.getElementById("mfa").hidden) { form.mfaToken.value = ""; form.mfaToken.focus(); }
          show(error, "The login, password, code or one-time code is wrong, or the code has expired.");
        }
      })
      .catch(function () {
        busy = false;
        submit.disabled = false;
        show(error, "A temporary failure occurred; please try again.");
      });
  }

  // Six digits typed (or pasted) into the one-time code field send the form at once.
  form.mfaToken.addEventListener("input", function () {
    if (/^[0-9]{6}$/.test(otp()) && !busy) {
      if (form.requestSubmit) { form.requestSubmit(); } else { send(mode === "device" ? "authDevice" : "authCode"); }
    }
  });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); send(mode === "device" ? "authDevice" : "authCode"); });
  var deny = document.getElementById("deny");
  if (deny) { deny.addEventListener("click", function () { send("denyDevice"); }); }
})();
