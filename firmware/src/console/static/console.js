// facegate console: the live view (the door camera with its boxes and verdicts, polled about
// three times a second) and the latest events (server-sent events). No other script runs.
"use strict";

(function () {
  const live = document.getElementById("live");
  const canvas = document.getElementById("view");
  const note = document.getElementById("live-note");
  const faces = document.getElementById("live-faces");
  const events = document.getElementById("events");
  const status = document.getElementById("status");
  const doorState = document.getElementById("door-state");

  const COLOURS = { let_in: "#2e7d32", unknown: "#c62828", detected: "#9e9e9e" };

  function text(el, s) {
    if (el) { el.textContent = s; }
  }

  // Each face's verdict as a list item (data-verdict for scripts and tests).
  function listFaces(list) {
    if (!faces) { return; }
    faces.replaceChildren();
    for (const f of list) {
      const li = document.createElement("li");
      li.dataset.verdict = f.verdict;
      let s = (f.name ? f.name + ": " : "") + f.verdict.replace("_", " ");
      if (typeof f.size_px === "number") { s += ", face " + f.size_px + " px"; }
      if (typeof f.distance === "number") { s += ", distance " + f.distance.toFixed(2); }
      li.textContent = s;
      faces.appendChild(li);
    }
  }

  async function frame() {
    try {
      const meta = await fetch("/api/live", { credentials: "same-origin" });
      if (meta.status === 401) { window.location = "/login"; return; }
      const now = await meta.json();
      if (!now.frame) {
        text(note, now.error ? "Live view: " + now.error : "Waiting for the door camera...");
        return;
      }
      const live_frame = now.frame;
      const pic = await fetch("/live.jpg", { credentials: "same-origin" });
      if (!pic.ok) { return; }
      const bitmap = await createImageBitmap(await pic.blob());
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      const g = canvas.getContext("2d");
      g.drawImage(bitmap, 0, 0);
      g.lineWidth = 3;
      g.font = "16px sans-serif";
      for (const f of live_frame.faces || []) {
        const colour = COLOURS[f.verdict] || "#ef6c00";
        g.strokeStyle = colour;
        g.strokeRect(f.x, f.y, f.w, f.h);
        let label = f.verdict.replace("_", " ");
        if (f.name) { label = f.name + ": " + label; }
        if (typeof f.distance === "number") { label += " (" + f.distance.toFixed(2) + ")"; }
        g.fillStyle = colour;
        g.fillText(label, f.x, Math.max(16, f.y - 4));
      }
      listFaces(live_frame.faces || []);
      live.dataset.seq = String(live_frame.seq);
      text(note, "Frame " + live_frame.seq + ", " + new Date(live_frame.at_ms).toLocaleTimeString());
    } catch (e) {
      text(note, "Live view unavailable");
    }
  }

  // One line a person reads at a glance: locked or not, lockdown, camera, alarm.
  function summary(st) {
    const d = st.door || {};
    const parts = [d.lock === "unlocked" ? "Unlocked" : "Locked"];
    if (d.held_by) { parts.push("held by " + String(d.held_by).replace("_", " ")); }
    if (d.lockdown) { parts.push("LOCKDOWN"); }
    if (d.reader_mode) { parts.push("reader mode"); }
    parts.push(st.camera_ok === false ? "camera FAILING" : "camera ok");
    if (st.alarm) { parts.push("alarm: " + st.alarm); }
    return parts.join(" - ");
  }

  async function refreshStatus() {
    try {
      const r = await fetch("/api/status", { credentials: "same-origin" });
      if (!r.ok) { return; }
      const st = await r.json();
      if (status) { status.textContent = JSON.stringify(st, null, 2); }
      text(doorState, summary(st));
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

  if (doorState) {
    refreshStatus();
    setInterval(function () { if (!document.hidden) { refreshStatus(); } }, 2000);
  }

  if (events) {
    const source = new EventSource("/api/events");
    source.onmessage = function (m) {
      let line = m.data;
      const li = document.createElement("li");
      try {
        const v = JSON.parse(m.data);
        line = [v.time, v.event, v.identity || v.name || "", v.reason || "", v.by || ""].join(" ");
        li.dataset.event = v.event || "";
        li.dataset.identity = v.identity || "";
        li.dataset.reason = v.reason || "";
      } catch (e) { /* shown as it came */ }
      li.textContent = line;
      events.insertBefore(li, events.firstChild);
      while (events.children.length > 50) { events.removeChild(events.lastChild); }
      refreshStatus();
    };
  }
})();
