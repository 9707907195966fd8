/**
 * GET /: one self-contained page (inline CSS and script, no external assets) for an appliance that
 * may have lost its internet line -- the moment someone opens it. It subscribes to the failover
 * stream and re-reads /api/status every second (MII and carrier changes are not events) and at
 * every failover, uplink change and decision. All values go in through textContent, never as HTML.
 */
import { describeLinkMonitor } from './link-monitor.ts';
import { explainActiveSlave, uplinkCells } from './uplink-summary.ts';
export const pageContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bond status</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .3rem; }
  table { border-collapse: collapse; margin: .4rem 0; }
  th, td { text-align: left; padding: .2rem .8rem .2rem 0; border-bottom: 1px solid #ddd; }
  .up { color: #186b1d; font-weight: 600; } .down { color: #b3261e; font-weight: 600; }
  .active { background: #e6f4e7; } .muted { color: #777; } .error { color: #b3261e; }
  #conn { float: right; font-size: .85rem; }
</style>
</head>
<body>
<span id="conn" class="muted">connecting...</span>
<h1>bond status <span id="uptime" class="muted"></span></h1>
<div id="bonds"></div>
<h2>Failovers</h2>
<table><thead><tr><th>time</th><th>bond</th><th>from</th><th>to</th><th>cause</th><th>uplink reason</th><th>healed after</th></tr></thead><tbody id="events"></tbody></table>
<script>
"use strict";
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
// The terminal's own wording, from link-monitor.ts.
const describeLinkMonitor = ${describeLinkMonitor.toString()};
// The terminal's uplink rows and reasons, from uplink-summary.ts.
const uplinkCells = ${uplinkCells.toString()};
const explainActiveSlave = ${explainActiveSlave.toString()};
const show = (v) => v === null || v === undefined ? "-" : v;
function row(cells, cls) { const tr = el("tr", undefined, cls); for (const c of cells) tr.append(c instanceof Node ? c : el("td", show(c))); return tr; }
function status(text) { return el("td", show(text), text === "up" ? "up" : text === null ? "" : "down"); }
function renderBonds(doc) {
  document.getElementById("uptime").textContent = "(service up " + Math.round(doc.uptime_seconds) + " s)";
  const root = document.getElementById("bonds");
  root.replaceChildren();
  if (doc.note) root.append(el("p", "Note: " + doc.note, "error"));
  if (doc.bonds.length === 0) root.append(el("p", "No bonds found.", "muted"));
  for (const b of doc.bonds) {
    root.append(el("h2", b.name));
    if (b.error) { root.append(el("p", b.error, "error")); continue; }
    const since = b.seconds_since_last_failover === null ? "never" : Math.round(b.seconds_since_last_failover) + " s ago";
    root.append(el("p", b.mode + ", MII " + show(b.mii_status) + ", " + describeLinkMonitor(b) + "; primary " + show(b.primary) +
      " (reselect " + show(b.primary_reselect) + "); active slave " + show(b.active_slave) + "; failovers " + b.failovers + ", last " + since +
      "; last heal " + healText(b.last_heal)));
    const table = el("table");
    table.append(row(["slave", "state", "MII", "carrier", "speed", "duplex", "link failures", "MAC"].map((h) => el("th", h))));
    for (const s of b.slaves) {
      table.append(row([s.name, s.state, status(s.mii_status), s.carrier === null ? "-" : s.carrier ? "yes" : "no",
        s.speed_mbps === null ? "-" : s.speed_mbps + " Mbps", s.duplex, s.link_failure_count, s.perm_hwaddr], s.state === "active" ? "active" : ""));
    }
    root.append(table);
    if (b.uplinks) renderUplinks(root, b);
  }
}
function renderUplinks(root, b) {
  root.append(el("p", "Uplinks (pibond-uplink, targets " + (b.uplinks.targets.join(", ") || "none") + "): " + explainActiveSlave(b)));
  const table = el("table");
  table.append(row(["slave", "uplink", "router", "targets", "note"].map((h) => el("th", h))));
  for (const u of b.uplinks.uplinks) {
    const cells = uplinkCells(u);
    table.append(row([cells[0], el("td", cells[1], u.state === "up" ? "up" : u.state === "down" ? "down" : "muted"), cells[2], cells[3], cells[4]]));
  }
  root.append(table);
}
function healText(h) {
  if (!h) return "-";
  return h.heal_ms === null ? h.outcome.replace("_", " ") : h.heal_ms + " ms (" + h.action + ")";
}
function addEvent(e) {
  const healed = e.heal_ms === undefined || e.heal_ms === null ? "-" : e.heal_ms + " ms (" + e.heal_action + ")";
  document.getElementById("events").prepend(row([new Date(e.time).toLocaleString(), e.bond, e.from, e.to, e.cause, e.reason, healed]));
}
async function refresh() {
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    renderBonds(await res.json());
  } catch (err) { document.getElementById("conn").textContent = "status unavailable"; }
}
async function loadEvents() {
  try {
    const res = await fetch("/api/events", { cache: "no-store" });
    document.getElementById("events").replaceChildren();
    for (const e of (await res.json()).events) addEvent(e);
  } catch (err) { /* the stream's error handler reports it */ }
}
const stream = new EventSource("/api/events/stream");
// (Re)connected: catch up on what happened while the stream was down.
stream.onopen = () => { document.getElementById("conn").textContent = "live"; loadEvents(); refresh(); };
stream.onerror = () => { document.getElementById("conn").textContent = "reconnecting..."; };
stream.addEventListener("failover", (m) => { addEvent(JSON.parse(m.data)); refresh(); });
stream.addEventListener("heal", () => { loadEvents(); refresh(); });
stream.addEventListener("uplink", () => { refresh(); });
// A decision read after its failover gives that failover its reason: the list again.
stream.addEventListener("decision", () => { loadEvents(); refresh(); });
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
