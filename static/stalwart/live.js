/* The dashboard's live chart and live log (templates/admin/dashboard.html, docs/telemetry.md).

   Each stream is opened with a short-lived token that the page asks /api/token/{metrics,tracing}
   for with its session: a POST carrying the page's CSRF token. EventSource cannot send headers,
   so the token goes in the query (the access log never prints query strings). A token opens a
   stream for 60 seconds; when a stream ends (the server restarted, the network dropped) a new
   token is fetched before reconnecting. Everything is drawn with textContent and a canvas: no
   markup from the server's data, no inline script or style (the admin's CSP). */
(function () {
  "use strict";

  const root = document.getElementById("live");
  if (!root) return;
  const csrf = root.dataset.csrf;

  async function mint(kind) {
    const response = await fetch("/api/token/" + kind, {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf},
    });
    if (!response.ok) throw new Error("token " + response.status);
    return response.text();
  }

  /* An EventSource on /api/live/<kind>?<query>, reopened with a new token when it closes. */
  function live(kind, query, handlers, status) {
    let source = null, timer = null, stopped = false;
    async function connect() {
      let token;
      try {
        token = await mint(kind);
      } catch (error) {
        status("offline (" + error.message + "), retrying");
        timer = setTimeout(connect, 5000);
        return;
      }
      if (stopped) return;
      const url = "/api/live/" + kind + "?" + (query ? query + "&" : "") + "token=" + encodeURIComponent(token);
      let opened = false;
      source = new EventSource(url);
      for (const name of Object.keys(handlers)) {
        source.addEventListener(name, (event) => handlers[name](JSON.parse(event.data)));
      }
      source.onopen = () => { opened = true; status("live"); };
      source.onerror = () => {
        if (source.readyState !== EventSource.CLOSED) {
          status("reconnecting…");
          return;
        }
        source = null;
        if (stopped) return;
        if (opened) {
          status("reconnecting…");
          timer = setTimeout(connect, 2000);
          return;
        }
        // Refused at once: a filter the server does not accept is not retried; say why.
        explain(url).then((detail) => {
          if (detail) status("refused: " + detail);
          else if (!stopped) timer = setTimeout(connect, 5000);
        });
      };
    }

    async function explain(url) {
      const abort = new AbortController();
      try {
        const response = await fetch(url, {signal: abort.signal, credentials: "same-origin"});
        if (response.status === 400 || response.status === 403) return (await response.json()).detail;
      } catch (error) {
        // the network again: retried
      } finally {
        abort.abort();
      }
      return null;
    }
    connect();
    return {
      close() {
        stopped = true;
        clearTimeout(timer);
        if (source) source.close();
      },
    };
  }

  function setStatus(id) {
    const el = document.getElementById(id);
    return (text) => { if (el) el.textContent = text; };
  }

  /* --- the chart ------------------------------------------------------------------------- */
  const canvas = document.getElementById("live-chart");
  if (canvas) {
    const SERIES = [
      {label: "HTTP requests/s", color: "#2f6fd6", total: (c) => c["http.request-url"] || 0},
      {label: "JMAP method calls/s", color: "#1a9e5a", total: (c) => c["jmap.method-call"] || 0},
      {label: "Sign-ins/s (successful and failed)", color: "#d6452f",
       total: (c) => (c["auth.success"] || 0) + (c["auth.failed"] || 0)},
    ];
    const KEEP = 120;
    const points = [];   // [{at, rates: [..]}]
    let previous = null; // {at, totals: [..]}
    let frames = 0;

    const legend = document.getElementById("live-legend");
    const values = SERIES.map((series, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch series-" + i;
      const value = document.createElement("b");
      value.textContent = "–";
      item.append(swatch, series.label + ": ", value);
      item.dataset.series = String(i);
      legend.append(item);
      return value;
    });

    function draw() {
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const style = getComputedStyle(canvas);
      const left = 48, right = 8, top = 8, bottom = 20;
      const plotW = width - left - right, plotH = height - top - bottom;
      let max = 1;
      for (const p of points) for (const r of p.rates) max = Math.max(max, r);
      max = niceCeiling(max);
      ctx.font = "11px sans-serif";
      ctx.fillStyle = style.color;
      ctx.strokeStyle = "rgba(128,128,128,0.3)";
      ctx.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const y = top + plotH - (plotH * i) / 4;
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + plotW, y);
        ctx.stroke();
        ctx.fillText(formatRate((max * i) / 4), 4, y + 4);
      }
      ctx.fillText(points.length ? "last " + Math.round((points[points.length - 1].at - points[0].at) / 1000) + " s" : "waiting for data",
                   left, height - 4);
      SERIES.forEach((series, s) => {
        ctx.strokeStyle = series.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        points.forEach((p, i) => {
          const x = left + (points.length > 1 ? (plotW * i) / (KEEP - 1) : 0);
          const y = top + plotH - (plotH * p.rates[s]) / max;
          if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        });
        ctx.stroke();
      });
    }

    function niceCeiling(value) {
      const power = Math.pow(10, Math.floor(Math.log10(value)));
      for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
      return 10 * power;
    }

    function formatRate(value) {
      return value >= 10 ? value.toFixed(0) : value.toFixed(1);
    }

    function onMetrics(items) {
      const counters = {};
      for (const item of items) if (item["@type"] === "Counter") counters[item.metric] = item.count;
      const now = Date.now();
      const totals = SERIES.map((series) => series.total(counters));
      if (previous) {
        const seconds = Math.max((now - previous.at) / 1000, 0.001);
        const rates = totals.map((total, i) => Math.max(0, (total - previous.totals[i]) / seconds));
        points.push({at: now, rates});
        if (points.length > KEEP) points.shift();
        rates.forEach((rate, i) => { values[i].textContent = formatRate(rate); });
      }
      previous = {at: now, totals};
      frames += 1;
      // What the page shows, readable by tests and assistive tools alike.
      canvas.dataset.frames = String(frames);
      canvas.dataset.totals = JSON.stringify(totals);
      canvas.dataset.points = String(points.length);
      draw();
    }

    live("metrics", "interval=1", {metrics: onMetrics}, setStatus("live-metrics-status"));
    window.addEventListener("resize", draw);
    draw();
  }

  /* --- the log --------------------------------------------------------------------------- */
  const table = document.getElementById("live-log");
  if (table) {
    const body = table.tBodies[0];
    const KEEP_ROWS = 300;
    const status = setStatus("live-log-status");
    let paused = false;
    let stream = null;

    function describe(value) {
      if (!value || value["@type"] === "Null") return "";
      if (value["@type"] === "List") return "[" + value.value.map(describe).join(", ") + "]";
      if (value["@type"] === "Duration") return value.value + " ms";
      return String(value.value);
    }

    function onTrace(events) {
      if (paused) return;
      for (const event of events) {
        const row = body.insertRow(0);
        row.insertCell().textContent = (event.timestamp || "").slice(11, 19);
        row.insertCell().textContent = event.event;
        const details = [];
        for (const index of Object.keys(event.keyValues).sort((a, b) => a - b)) {
          const kv = event.keyValues[index];
          if (kv.key === "spanId") { row.dataset.span = String(kv.value.value); continue; }
          details.push(kv.key + "=" + describe(kv.value));
        }
        row.insertCell().textContent = details.join("  ");
      }
      while (body.rows.length > KEEP_ROWS) body.deleteRow(body.rows.length - 1);
    }

    /* "word other key=value": the words are the text filter, each key=value a key filter. */
    function query(text) {
      const params = new URLSearchParams();
      const words = [];
      for (const part of text.trim().split(/\s+/)) {
        if (!part) continue;
        const at = part.indexOf("=");
        if (at > 0) params.set(part.slice(0, at), part.slice(at + 1));
        else words.push(part);
      }
      if (words.length) params.set("filter", words.join(" "));
      return params.toString();
    }

    function start() {
      if (stream) stream.close();
      const text = document.getElementById("live-log-filter").value;
      stream = live("tracing", query(text), {trace: onTrace, ping: () => {}}, status);
    }

    document.getElementById("live-log-form").addEventListener("submit", (event) => {
      event.preventDefault();
      start();
    });
    const pause = document.getElementById("live-log-pause");
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.textContent = paused ? "Resume" : "Pause";
    });
    document.getElementById("live-log-clear").addEventListener("click", () => {
      while (body.rows.length) body.deleteRow(0);
    });
    start();
  }
})();
