// hil dashboard: the pages. Data from /api/..., live updates by server-sent events, plots by plotly.js.
"use strict";

const TOKEN = document.querySelector('meta[name="hil-token"]').content;
const PAGE = document.body.dataset.page;
const RUN = document.body.dataset.run;
const main = document.getElementById("main");
const liveMark = document.getElementById("live");
const WINDOW = 50; // batches in the running accuracy
window.hilArrivals = []; // {epoch, batch, t}: when each batch reached this page (ms since the epoch)

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const pct = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(2) + " %");
const when = (s) => (s ? new Date(s * 1000).toLocaleString() : "-");
const dur = (s) => {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
};
const badge = (status) => `<span class="badge ${esc(status)}">${esc(status)}</span>`;
const LAYOUT = {margin: {l: 55, r: 15, t: 10, b: 40}, legend: {orientation: "h", y: -0.22}, font: {size: 11}};
const CONFIG = {displaylogo: false, responsive: true};

function stream(url, onData) {
  const es = new EventSource(url);
  es.onopen = () => { liveMark.textContent = "live"; liveMark.classList.add("on"); };
  es.onerror = () => { liveMark.textContent = "reconnecting"; liveMark.classList.remove("on"); };
  es.onmessage = (ev) => onData(JSON.parse(ev.data));
  return es;
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function askStop(id, kind) {
  const what = kind === "sweep"
    ? `Stop sweep ${id}?\n\nTrials that finished stay recorded; run the same hil sweep command again to finish the rest.`
    : `Stop run ${id}?\n\nIt stops at the next batch, saves a checkpoint and puts the crossbar in its safe state, `
      + `as Ctrl-C does. Continue later with: hil train --resume ${id}`;
  if (!window.confirm(what)) return;
  const r = await fetch(`/api/run/${encodeURIComponent(id)}/stop`, {method: "POST", headers: {"X-HIL-Token": TOKEN}});
  const out = document.getElementById("stop-note");
  if (out) out.textContent = r.ok ? "stop requested: waiting for the run to checkpoint" : `refused: ${await r.text()}`;
}

function stopButton(state, kind) {
  const b = document.getElementById("stop");
  if (!b) return;
  b.disabled = !state.stoppable || state.stop_requested;
  b.textContent = state.stop_requested && state.stoppable ? "stopping..." : "Stop";
  b.onclick = () => askStop(RUN, kind);
}

// ---------------------------------------------------------------- runs
function runsPage() {
  main.innerHTML = `<h1>Runs</h1>
    <div class="filters">kind <select id="f-kind"><option value="">all</option></select>
    status <select id="f-status"><option value="">all</option></select></div>
    <table id="runs"><thead><tr><th>id</th><th>kind</th><th>status</th><th>progress</th><th>accuracy</th>
    <th>started</th><th>updated</th><th>crossbar</th></tr></thead><tbody></tbody></table>`;
  let runs = [];
  const fk = document.getElementById("f-kind"), fs = document.getElementById("f-status");
  const fill = (sel, values) => {
    const keep = sel.value;
    sel.innerHTML = `<option value="">all</option>` + values.map((v) => `<option>${esc(v)}</option>`).join("");
    sel.value = values.includes(keep) ? keep : "";
  };
  const render = () => {
    fill(fk, [...new Set(runs.map((r) => r.kind))].sort());
    fill(fs, [...new Set(runs.map((r) => r.status))].sort());
    const rows = runs.filter((r) => (!fk.value || r.kind === fk.value) && (!fs.value || r.status === fs.value));
    document.querySelector("#runs tbody").innerHTML = rows.map((r) => `<tr data-id="${esc(r.id)}">
      <td><a href="/run/${encodeURIComponent(r.id)}">${esc(r.id)}</a></td><td>${esc(r.kind)}</td><td>${badge(r.status)}</td>
      <td>${r.fraction === null ? "" : `<span class="bar"><span style="width:${(100 * r.fraction).toFixed(1)}%"></span></span>`}${esc(r.progress)}</td>
      <td>${r.accuracy === null ? "-" : pct(r.accuracy) + ` <span class="note">${esc(r.accuracy_label)}</span>`}</td>
      <td>${when(r.created_s)}</td><td>${when(r.updated_s)}</td><td>${esc(r.crossbar)}</td></tr>`).join("");
  };
  fk.onchange = fs.onchange = render;
  stream("/api/runs/events", (d) => { runs = d.runs; render(); });
}

// ---------------------------------------------------------------- a training run
function trainPage(run) {
  const tc = run.config.train || {};
  main.innerHTML = `<h1>${esc(run.name)} ${badge(run.status)} <button id="stop" class="stop">Stop</button>
    <span id="stop-note" class="note"></span></h1>
    <div class="sub">${esc(run.id)} &middot; ${esc(run.kind)} on ${esc(run.crossbar)} &middot; started ${when(run.created_s)}
    &middot; code ${esc(run.code_version)}</div>
    <div class="stats" id="stats"></div>
    <div class="grid">
      <div class="card"><h2>accuracy</h2><div id="p-acc" class="plot"></div></div>
      <div class="card"><h2>loss</h2><div id="p-loss" class="plot"></div></div>
      <div class="card"><h2>solver iterations and clipped cells per batch</h2><div id="p-solver" class="plot"></div></div>
      <div class="card"><h2>samples/s per epoch</h2><div id="p-speed" class="plot"></div></div>
      <div class="card" id="c-snr" hidden><h2>EP signal, noise and SNR per layer</h2><div id="p-snr" class="plot"></div></div>
      <div class="card" id="c-hist" hidden><h2>conductances per block (last checkpoint)</h2><div id="p-hist" class="plot"></div></div>
    </div>
    <h2>crossbar</h2><pre id="crossbar"></pre>`;
  document.getElementById("crossbar").textContent =
    JSON.stringify(run.config.crossbar, null, 1) + (run.station ? "\n\nstation:\n" + JSON.stringify(run.station, null, 1) : "");
  const b = {x: [], acc: [], loss: [], it: [], clip: [], key: []};
  let nb = null, win = [], last = {epoch: -1, batch: -1}, state = run, epochsSeen = -1;
  const perEpoch = () => nb || (tc.max_batches ? tc.max_batches : Math.ceil((run.config.data?.train_subset || 1) / (tc.batch_size || 1)));
  Plotly.newPlot("p-acc", [
    {x: [], y: [], name: `train, running mean of ${WINDOW} batches`, line: {width: 1, color: "#9ab"}},
    {x: [], y: [], name: "train (epoch)", mode: "lines+markers"},
    {x: [], y: [], name: "test (epoch)", mode: "lines+markers"},
  ], {...LAYOUT, xaxis: {title: "epoch"}, yaxis: {title: "accuracy", rangemode: "tozero"}}, CONFIG);
  Plotly.newPlot("p-loss", [
    {x: [], y: [], name: "train batch", line: {width: 1, color: "#cbd"}},
    {x: [], y: [], name: "train (epoch)", mode: "lines+markers"},
    {x: [], y: [], name: "test (epoch)", mode: "lines+markers"},
  ], {...LAYOUT, xaxis: {title: "epoch"}, yaxis: {title: "loss", type: "log"}}, CONFIG);
  Plotly.newPlot("p-solver", [
    {x: [], y: [], name: "solver iterations", line: {width: 1}},
    {x: [], y: [], name: "clipped cells", yaxis: "y2", line: {width: 1}},
  ], {...LAYOUT, xaxis: {title: "epoch"}, yaxis: {title: "iterations"}, yaxis2: {title: "clipped", overlaying: "y", side: "right", rangemode: "tozero"}}, CONFIG);
  Plotly.newPlot("p-speed", [{x: [], y: [], type: "bar", name: "samples/s"}],
    {...LAYOUT, xaxis: {title: "epoch", dtick: 1}, yaxis: {title: "samples/s"}}, CONFIG);

  function addBatches(rows) {
    if (!rows.length) return;
    const now = Date.now();
    const xs = [], acc = [], loss = [], it = [], clip = [];
    for (const r of rows) {
      window.hilArrivals.push({epoch: r.epoch, batch: r.batch, t: now});
      win.push(r.correct / r.size);
      if (win.length > WINDOW) win.shift();
      xs.push(r.epoch + (r.batch + 1) / perEpoch());
      acc.push(win.reduce((a, v) => a + v, 0) / win.length);
      loss.push(r.loss); it.push(r.iterations); clip.push(r.clipped);
      last = {epoch: r.epoch, batch: r.batch};
    }
    Plotly.extendTraces("p-acc", {x: [xs], y: [acc]}, [0]);
    Plotly.extendTraces("p-loss", {x: [xs], y: [loss]}, [0]);
    Plotly.extendTraces("p-solver", {x: [xs, xs], y: [it, clip]}, [0, 1]);
    document.body.dataset.batches = window.hilArrivals.length;
  }

  function setState(s) {
    state = s;
    if (s.progress) nb = s.progress.batches;
    const p = s.progress, ep = s.epochs, lastEp = ep[ep.length - 1];
    document.querySelector("h1 .badge").outerHTML = badge(s.status);
    stopButton(s, "train");
    document.getElementById("stats").innerHTML = [
      ["status", esc(s.status)],
      ["position", p ? `epoch ${Math.min(p.epoch + 1, p.epochs)}/${p.epochs}, batch ${p.batch}/${p.batches}` : `${ep.length} epochs`],
      ["samples/s", p && p.samples_per_s ? Math.round(p.samples_per_s).toLocaleString() : "-"],
      ["ETA", s.status === "running" ? dur(p && p.eta_s) : "-"],
      ["running train acc", p && p.running_acc !== undefined ? pct(p.running_acc) : "-"],
      ["last test acc", lastEp ? pct(lastEp.test_acc) : "-"],
      ["batches on page", String(window.hilArrivals.length)],
    ].map(([k, v]) => `<div class="stat"><b id="stat-${k.replace(/\W+/g, "-")}">${v}</b><span>${k}</span></div>`).join("");
    if (ep.length !== epochsSeen) {
      epochsSeen = ep.length;
      const x = ep.map((e) => e.epoch + 1);
      Plotly.restyle("p-acc", {x: [x, x], y: [ep.map((e) => e.train_acc), ep.map((e) => e.test_acc)]}, [1, 2]);
      Plotly.restyle("p-loss", {x: [x, x], y: [ep.map((e) => e.train_loss), ep.map((e) => e.test_loss)]}, [1, 2]);
      Plotly.restyle("p-speed", {x: [x], y: [ep.map((e) => e.samples_per_s)]}, [0]);
      if (run.has_checkpoint || ep.length) histograms();
    }
    snr(s.layer_signal || []);
  }

  function snr(rows) {
    if (!rows.length) return;
    document.getElementById("c-snr").hidden = false;
    const layers = [...new Set(rows.map((r) => r.layer))];
    const traces = [];
    for (const l of layers) {
      const rs = rows.filter((r) => r.layer === l), x = rs.map((r) => r.epoch + 1);
      traces.push({x, y: rs.map((r) => r.snr), name: `SNR layer ${l}`, mode: "lines+markers"});
      traces.push({x, y: rs.map((r) => r.signal_median), name: `signal layer ${l} (V)`, yaxis: "y2", line: {dash: "dot"}});
      traces.push({x, y: rs.map((r) => r.noise), name: `noise layer ${l} (V)`, yaxis: "y2", line: {dash: "dash"}});
    }
    Plotly.react("p-snr", traces, {...LAYOUT, xaxis: {title: "epoch", dtick: 1}, yaxis: {title: "SNR", type: "log"},
      yaxis2: {title: "volts", type: "log", overlaying: "y", side: "right"}}, CONFIG);
  }

  async function histograms() {
    const h = await getJSON(`/api/run/${encodeURIComponent(RUN)}/histograms`);
    const names = Object.keys(h);
    if (!names.length) return;
    document.getElementById("c-hist").hidden = false;
    const traces = names.map((n) => {
      const e = h[n].edges;
      return {x: e.slice(0, -1).map((v, i) => (v + e[i + 1]) / 2), y: h[n].counts, type: "bar", name: n, opacity: 0.7};
    });
    Plotly.react("p-hist", traces, {...LAYOUT, barmode: "overlay", xaxis: {title: "conductance (model units)"}, yaxis: {title: "cells", type: "log"}}, CONFIG);
  }

  addBatches(run.batches);
  setState(run);
  // messages that arrive while the page is busy are drawn together, at most once per frame
  let queued = [], latest = null;
  const draw = () => {
    addBatches(queued);
    setState(latest);
    queued = [];
    latest = null;
  };
  stream(`/api/run/${encodeURIComponent(RUN)}/events?epoch=${last.epoch}&batch=${last.batch}`, (d) => {
    if (latest === null) requestAnimationFrame(draw);
    queued = queued.concat(d.batches);
    latest = d;
  });
}

// ---------------------------------------------------------------- a sweep
function sweepPage(run) {
  main.innerHTML = `<h1>${esc(run.name)} <span id="badge"></span> <button id="stop" class="stop">Stop</button>
    <span id="stop-note" class="note"></span></h1>
    <div class="sub">${esc(run.id)} &middot; sweep started ${when(run.created_s)}</div>
    <div class="stats" id="stats"></div>
    <div class="card"><h2 id="fig-title">figure</h2><img id="figure" class="figure" alt="no finished trial yet"></div>
    <h2>trials</h2><div class="scroll"><table id="trials"><thead></thead><tbody></tbody></table></div>`;
  let version = null, busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const s = await getJSON(`/api/sweep/${encodeURIComponent(RUN)}`);
      document.getElementById("badge").innerHTML = badge(s.status);
      stopButton(s, "sweep");
      document.getElementById("stats").innerHTML = [["done", s.done], ["failed", s.failed], ["pending", s.pending],
        ["total", s.total], ["protocol", s.protocol]].map(([k, v]) =>
        `<div class="stat"><b id="stat-${k}">${esc(v)}</b><span>${k}</span></div>`).join("");
      document.getElementById("fig-title").textContent = `${s.figure} (${s.protocol}), redrawn as trials arrive`;
      if (s.figure_version !== version && s.done > 0) {
        version = s.figure_version;
        const img = document.getElementById("figure");
        img.src = `/api/sweep/${encodeURIComponent(RUN)}/figure.png?v=${version}`;
        img.dataset.version = version;
      }
      const cols = s.rows.length ? Object.keys(s.rows[0]).filter((c) => c !== "trial_id") : [];
      document.querySelector("#trials thead").innerHTML = `<tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>`;
      document.querySelector("#trials tbody").innerHTML = s.rows.map((r) => `<tr>${cols.map((c) =>
        `<td>${c === "status" ? badge(r[c]) : typeof r[c] === "number" ? esc(Number(r[c].toPrecision(4))) : esc(r[c])}</td>`).join("")}</tr>`).join("");
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  stream(`/api/run/${encodeURIComponent(RUN)}/events`, () => refresh());
}

// ---------------------------------------------------------------- a characterization
function characterizationPage(run) {
  const imgs = run.images.map((n) => `<div class="card"><h2>${esc(n)}</h2>
    <img class="figure" src="/api/run/${encodeURIComponent(RUN)}/artifact/${encodeURIComponent(n)}" alt="${esc(n)}"></div>`).join("");
  const texts = Object.entries(run.texts).map(([n, t]) => `<h2>${esc(n)}</h2><pre>${esc(t)}</pre>`).join("");
  main.innerHTML = `<h1>${esc(run.name)} ${badge(run.status)}</h1>
    <div class="sub">${esc(run.id)} &middot; ${esc(run.kind)} on ${esc(run.crossbar)} &middot; ${when(run.created_s)}
    &middot; raw reads: <code>hil.open_workspace(...).samples("${esc(run.id)}")</code></div>
    <div class="grid">${imgs || '<p class="note">no figures yet (they are written when the run finishes)</p>'}</div>${texts}`;
  stream(`/api/run/${encodeURIComponent(RUN)}/events`, (d) => { if (d.status !== run.status) location.reload(); });
}

async function runPage() {
  const run = await getJSON(`/api/run/${encodeURIComponent(RUN)}`);
  document.title = `${run.name} - hil dashboard`;
  if (run.kind === "sweep") sweepPage(run);
  else if (run.kind === "characterize" || run.kind === "calibrate") characterizationPage(run);
  else trainPage(run);
}

(PAGE === "runs" ? Promise.resolve(runsPage()) : runPage()).catch((e) => {
  main.innerHTML = `<p class="note">${esc(e.message)}</p>`;
});
