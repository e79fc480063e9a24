// cde console: live logs of a run over server-sent events, filtered by level. Every
// other page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const logs = document.getElementById("logs");
  if (!logs) return;
  const level = document.getElementById("log-level");
  const shown = (line) => !level.value || line.dataset.level === level.value;
  level.addEventListener("change", () => {
    for (const line of logs.children) line.hidden = !shown(line);
  });
  const source = new EventSource("/runs/" + encodeURIComponent(logs.dataset.run) + "/logs?follow=true");
  source.addEventListener("log", (event) => {
    const entry = JSON.parse(event.data);
    const line = document.createElement("li");
    line.className = entry.level;
    line.dataset.level = entry.level;
    line.textContent = entry.at + " " + entry.level + " " + entry.message;
    line.hidden = !shown(line);
    logs.appendChild(line);
    logs.scrollTop = logs.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    const run = JSON.parse(event.data);
    const status = document.getElementById("run-status");
    status.textContent = run.status;
    status.className = "status " + run.status;
    // The output table is rendered by the server: fetch it once the run is over.
    if (logs.dataset.finished === "false" && run.status === "succeeded") window.location.reload();
  });
});
