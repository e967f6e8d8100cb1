// facegate console: the live view (the door camera with its boxes and verdicts, polled about
// three times a second) and the latest events (server-sent events). No other script runs.
"use strict";

(function () {
  const canvas = document.getElementById("view");
  const note = document.getElementById("live-note");
  const events = document.getElementById("events");
  const status = document.getElementById("status");

  const COLOURS = { let_in: "#2e7d32", unknown: "#c62828", detected: "#9e9e9e" };

  function text(el, s) {
    if (el) { el.textContent = s; }
  }

  async function frame() {
    try {
      const meta = await fetch("/api/live", { credentials: "same-origin" });
      if (meta.status === 401) { window.location = "/login"; return; }
      const live = await meta.json();
      if (!live.frame) {
        text(note, live.error ? "Live view: " + live.error : "Waiting for the door camera...");
        return;
      }
      const pic = await fetch("/live.jpg", { credentials: "same-origin" });
      if (!pic.ok) { return; }
      const bitmap = await createImageBitmap(await pic.blob());
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      const g = canvas.getContext("2d");
      g.drawImage(bitmap, 0, 0);
      g.lineWidth = 3;
      g.font = "16px sans-serif";
      for (const f of live.frame.faces || []) {
        const colour = COLOURS[f.verdict] || "#ef6c00";
        g.strokeStyle = colour;
        g.strokeRect(f.x, f.y, f.w, f.h);
        let label = f.verdict.replace("_", " ");
        if (f.name) { label = f.name + ": " + label; }
        if (typeof f.distance === "number") { label += " (" + f.distance.toFixed(2) + ")"; }
        g.fillStyle = colour;
        g.fillText(label, f.x, Math.max(16, f.y - 4));
      }
      text(note, "Frame " + live.frame.seq + ", " + new Date(live.frame.at_ms).toLocaleTimeString());
    } catch (e) {
      text(note, "Live view unavailable");
    }
  }

  async function refreshStatus() {
    try {
      const r = await fetch("/api/status", { credentials: "same-origin" });
      if (r.ok && status) { status.textContent = JSON.stringify(await r.json(), null, 2); }
    } catch (e) { /* the next event tries again */ }
  }

  if (canvas) {
    let busy = false;
    setInterval(async function () {
      if (busy || document.hidden) { return; }
      busy = true;
      await frame();
      busy = false;
    }, 330);
  }

  if (events) {
    const source = new EventSource("/api/events");
    source.onmessage = function (m) {
      let line = m.data;
      try {
        const v = JSON.parse(m.data);
        line = [v.time, v.event, v.identity || v.name || "", v.reason || "", v.by || ""].join(" ");
      } catch (e) { /* shown as it came */ }
      const li = document.createElement("li");
      li.textContent = line;
      events.insertBefore(li, events.firstChild);
      while (events.children.length > 50) { events.removeChild(events.lastChild); }
      refreshStatus();
    };
  }
})();
