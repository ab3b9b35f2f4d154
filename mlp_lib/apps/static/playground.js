// The playground of `mlp-lib serve`: start runs (POST /api/runs), follow each one's
// Server-Sent Events (GET /api/runs/ID/events) and draw them; pause, step, resume, cancel;
// the drawing pad asks the selected run (POST /api/predict with "run").
"use strict";

const COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0598bc", "#bf3989", "#57606a"];
const BLOCK = 100;
const $ = id => document.getElementById(id);
const runs = new Map();      // id -> {id, colour, label, state, step, steps, blocks, evals, ...}
let presets = [], limits = {}, selected = null, dirty = false, chartsKey = "";
const charts = {};

// --- settings, and their place in the address ---------------------------------------------

const FIELDS = ["seed", "epochs", "n_train", "dataset", "layers", "activation", "init", "schedule", "lr", "decay_steps"];
const CUSTOM = ["layers", "activation", "init", "schedule", "lr", "decay_steps"];

function presetOf(value) {
  const [kind, name] = value.split(":");
  return presets.find(p => p.kind === kind && p.name === name);
}

function describePreset() {
  const value = $("preset").value, preset = presetOf(value), custom = value === "custom";
  $("custom").hidden = !custom;
  $("n_train").disabled = value.startsWith("rung:");
  $("preset-about").textContent = custom ? "Your own network, trained like the report's rows."
    : `${preset.description} (notebook ${preset.notebook})` + referenceText(preset.reference);
  if (!$("epochs").dataset.touched) $("epochs").value = defaultEpochs(value);
}

function defaultEpochs(value) {
  const preset = presetOf(value);
  return preset ? preset.epochs : 3;
}

function referenceText(ref) {
  if (!ref || ref.report_accuracy == null) return ref && ref.report_loss === null ? "; the report: did not converge" : "";
  const ours = ref.acc_mean == null ? "" :
    `; ours, ${ref.seeds.length} seeds: ${pct(ref.acc_mean)} ± ${pct(ref.acc_std)}`;
  return `; the report: ${pct(ref.report_accuracy)}${ours}`;
}

function pct(x) { return x == null ? "—" : `${(100 * x).toFixed(2)}%`; }

// the request body the form describes (and the address that holds it)
function requestBody() {
  const value = $("preset").value, body = {};
  if (value.startsWith("row:")) body.row = value.slice(4);
  if (value.startsWith("rung:")) body.rung = value.slice(5);
  for (const field of ["seed", "epochs", "n_train"]) {
    if (field === "n_train" && body.rung) continue;
    const text = $(field).value.trim();
    if (text !== "") body[field] = Number(text);
  }
  if ($("dataset").value !== "mnist") body.dataset = $("dataset").value;
  if (value === "custom") {
    body.layers = $("layers").value.split(",").map(s => s.trim()).filter(Boolean).map(Number);
    for (const field of ["activation", "init", "schedule"]) body[field] = $(field).value;
    body.lr = Number($("lr").value);
    if (body.schedule === "decay") body.decay_steps = Number($("decay_steps").value);
  }
  return body;
}

function saveToAddress() {
  const body = requestBody(), query = new URLSearchParams();
  for (const [key, value] of Object.entries(body)) query.set(key, Array.isArray(value) ? value.join(",") : value);
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

function loadFromAddress() {
  const query = new URLSearchParams(location.search);
  if (query.has("row")) $("preset").value = `row:${query.get("row")}`;
  else if (query.has("rung")) $("preset").value = `rung:${query.get("rung")}`;
  else if (query.has("layers") || query.has("activation")) $("preset").value = "custom";
  if (!$("preset").value) $("preset").value = "row:relu-he-const";
  for (const field of FIELDS) {
    if (!query.has(field)) continue;
    $(field).value = query.get(field);
    if (field === "epochs") $("epochs").dataset.touched = "1";
  }
}

async function loadPresets() {
  const answer = await (await fetch("/api/presets")).json();
  presets = answer.presets;
  limits = answer.limits;
  const groups = [["row", "The report's rows"], ["rung", "Notebook 05's rungs (mini-batch)"]];
  const select = $("preset");
  for (const [kind, title] of groups) {
    const group = document.createElement("optgroup");
    group.label = title;
    for (const p of presets.filter(p => p.kind === kind)) group.append(new Option(p.name, `${kind}:${p.name}`));
    select.append(group);
  }
  select.append(new Option("custom…", "custom"));
  $("limits").textContent = `Limits: ${limits.hidden_layers[1]} hidden layers of at most ` +
    `${limits.width[1].toLocaleString()} units (${limits.parameters.toLocaleString()} parameters), ` +
    `${limits.epochs[1]} epochs and ${limits.steps.toLocaleString()} steps per-sample, ` +
    `${limits.rung_epochs[1]} epochs for a rung, ${limits.queued} runs queued.`;
  loadFromAddress();
  describePreset();
}

$("preset").addEventListener("change", () => { delete $("epochs").dataset.touched; describePreset(); saveToAddress(); });
$("epochs").addEventListener("input", () => { $("epochs").dataset.touched = "1"; });
$("settings").addEventListener("input", saveToAddress);
$("settings").addEventListener("submit", async event => {
  event.preventDefault();
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  $("form-status").textContent = "Starting…";
  const response = await fetch("/api/runs", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(requestBody()),
  });
  const answer = await response.json();
  if (!response.ok) {
    $("form-status").textContent = `Not started: ${answer.error}`;
    if (answer.field && $(answer.field)) $(answer.field).setAttribute("aria-invalid", "true");
    return;
  }
  $("form-status").textContent = `Started ${answer.id}: ${answer.label}.`;
  follow(answer);
  select(answer.id);
});

// --- runs -------------------------------------------------------------------------------

function follow(info) {
  if (runs.has(info.id)) return;
  const run = {
    ...info, colour: COLOURS[runs.size % COLOURS.length], blocks: [], evals: [], weights: null,
    weightsStep: null, source: null, position: info.queue_position,
  };
  runs.set(run.id, run);
  const source = new EventSource(`/api/runs/${run.id}/events`);
  run.source = source;
  source.addEventListener("block", e => { const b = JSON.parse(e.data); run.blocks.push(b); run.step = b.step; changed(); });
  source.addEventListener("eval", e => {
    const v = JSON.parse(e.data);
    run.evals.push(v);
    run.weights = v.weights;
    run.weightsStep = v.step;
    if (run.id === selected) predict();   // the drawing's answer follows the weights
    changed();
  });
  source.addEventListener("queue", e => { run.position = JSON.parse(e.data).position; changed(); });
  source.addEventListener("state", e => {
    const s = JSON.parse(e.data);
    run.state = s.state;
    if (s.error) run.error = s.error;
    if (s.state !== "queued") run.position = null;
    if (["cancelled", "failed"].includes(s.state)) source.close();
    changed();
  });
  source.addEventListener("done", e => {
    const d = JSON.parse(e.data);
    run.state = "done";
    run.result = d.result;
    run.step = d.step;
    source.close();
    changed();
  });
  source.onerror = () => { if (["done", "cancelled", "failed"].includes(run.state)) source.close(); };
  changed();
}

async function command(run, what) {
  if (what === "cancel") run.cancelling = true;  // no more questions for its weights (a 409)
  const response = await fetch(`/api/runs/${run.id}/${what}`, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
  const answer = await response.json();
  if (!response.ok) $("form-status").textContent = `${run.id}: ${answer.error}`;
}

function select(id) {
  selected = id;
  $("label").textContent = "–";
  changed();
  predict();
}

function changed() {
  if (dirty) return;
  dirty = true;
  requestAnimationFrame(() => { dirty = false; redraw(); });
}

function redraw() {
  drawRuns();
  drawCharts();
  drawResults();
  drawWeights();
}

function stateLine(run) {
  if (run.state === "queued") return `queued${run.position ? `, place ${run.position}` : ""}`;
  if (run.state === "failed") return `failed: ${run.error || "?"}`;
  return run.state;
}

function drawRuns() {
  const list = $("runs");
  $("runs-empty").hidden = runs.size > 0;
  for (const run of runs.values()) {
    let item = list.querySelector(`[data-run="${run.id}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.run = run.id;
      item.innerHTML = `<label class="run-name"><input type="radio" name="selected"> <span class="swatch"></span> <span class="name"></span></label>
        <div class="run-line"><progress max="1"></progress> <span class="state"></span></div>
        <div class="buttons"><button data-do="pause">Pause</button><button data-do="resume">Resume</button>
        <button data-do="step">Step</button><button data-do="cancel">Cancel</button></div>`;
      item.querySelector(".swatch").style.background = run.colour;
      item.querySelector(".name").textContent = `${run.id}: ${run.label}`;
      item.querySelector("input").addEventListener("change", () => select(run.id));
      for (const button of item.querySelectorAll("button")) button.addEventListener("click", () => command(run, button.dataset.do));
      list.append(item);
    }
    item.querySelector("input").checked = run.id === selected;
    item.querySelector("progress").value = run.step / run.steps;
    item.querySelector(".state").textContent =
      `${stateLine(run)} · step ${run.step.toLocaleString()} of ${run.steps.toLocaleString()}`;
    item.dataset.state = run.state;
    const live = run.state === "running" || run.state === "paused";
    item.querySelector('[data-do="pause"]').disabled = run.state !== "running";
    item.querySelector('[data-do="resume"]').disabled = run.state !== "paused";
    item.querySelector('[data-do="step"]').disabled = run.state !== "paused";
    item.querySelector('[data-do="cancel"]').disabled = !(live || run.state === "queued");
  }
}

// --- charts (uPlot): one x axis in blocks of 100 steps, shared by every run ------------------

function chart(name, element, title, yLabel, series, log, range, dots) {
  const width = Math.max(280, $(element).clientWidth - 8);
  const yAxis = {label: yLabel, size: 64};
  if (log) Object.assign(yAxis, {splits: decades, filter: (u, splits) => splits, values: (u, splits) => splits.map(short)});
  const options = {
    width, height: 240, title,
    scales: {x: {time: false}, y: log ? {distr: 3, log: 10} : range ? {range} : {}},
    axes: [{label: "step", values: (u, splits) => splits.map(v => v.toLocaleString())}, yAxis],
    series: [{label: "step"}, ...series.map(s => ({spanGaps: true, width: 2, points: {show: !!dots, size: 6}, ...s}))],
    legend: {live: false},
  };
  charts[name]?.destroy();
  $(element).replaceChildren();
  charts[name] = new uPlot(options, [[]], $(element));
  charts[name].element = element;
}

// a log axis: a line per power of ten (at most eight), and at 2 and 5 too over a short range;
// only values inside the scale (a label outside it would land on the step axis)
function decades(u, axis, min, max) {
  const lo = Math.floor(Math.log10(min)), hi = Math.ceil(Math.log10(max));
  const every = Math.max(1, Math.ceil((hi - lo) / 8)), marks = hi - lo <= 2 ? [1, 2, 5] : [1];
  const splits = [];
  for (let e = lo; e <= hi; e += every) {
    for (const m of marks) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) splits.push(v);
    }
  }
  return splits;
}
function short(v) {
  if (!(v > 0)) return "";
  return v >= 1e4 || v < 1e-2 ? v.toExponential(0).replace("e+", "e") : String(+v.toPrecision(3));
}

function sharedX() {
  let last = 0;
  for (const run of runs.values()) last = Math.max(last, run.blocks.length ? run.blocks[run.blocks.length - 1].step : 0);
  const n = Math.ceil(last / BLOCK);
  return Array.from({length: n + 1}, (_, i) => i * BLOCK);
}

function onGrid(x, points) {  // points: [step, value] -> values at x's indices (null elsewhere)
  const ys = new Array(x.length).fill(null);
  for (const [step, value] of points) ys[Math.min(x.length - 1, Math.ceil(step / BLOCK))] = value;
  return ys;
}

function drawCharts() {
  const list = [...runs.values()];
  const run = runs.get(selected);
  const key = list.map(r => r.id).join() + "|" + (run ? `${run.id}:${run.settings.layer_sizes.length}` : "");
  if (key !== chartsKey) {
    chartsKey = key;
    const perRun = list.map(r => ({label: r.id, stroke: r.colour}));
    chart("loss", "loss-chart", "", "loss (log)", perRun, true);
    chart("acc", "acc-chart", "", "accuracy", perRun, false, [0, 1], true);  // few tests: dots
    const layers = run ? run.settings.layer_sizes.length - 1 : 0;
    chart("grad", "grad-chart", "", "‖∂L/∂W‖", Array.from({length: layers}, (_, l) => ({label: `W${l + 1}`, stroke: COLOURS[l]})), true);
    chart("active", "active-chart", "", "fraction", Array.from({length: Math.max(0, layers - 1)}, (_, l) => ({label: `layer ${l + 1}`, stroke: COLOURS[l]})), false, [0, 1]);
  }
  const x = sharedX();
  setData("loss", [x, ...list.map(r => onGrid(x, r.blocks.map(b => [b.step, b.loss > 0 && Number.isFinite(b.loss) ? b.loss : null])))]);
  setData("acc", [x, ...list.map(r => onGrid(x, r.evals.map(v => [v.step, v.accuracy])))]);
  $("grad-run").textContent = $("active-run").textContent = run ? `(${run.id})` : "(select a run)";
  if (run) {
    const steps = run.blocks.map(b => b.step);
    setData("grad", [steps, ...run.settings.layer_sizes.slice(1).map((_, l) => run.blocks.map(b => Math.max(b.grad_norm[l], 1e-12)))]);
    setData("active", [steps, ...run.settings.layer_sizes.slice(2).map((_, l) => run.blocks.map(b => b.active[l]))]);
  }
}

// the chart's data, and on its element the points each line has (what a test reads)
function setData(name, data) {
  charts[name].setData(data);
  $(charts[name].element).dataset.points = data.slice(1).map(ys => ys.filter(y => y != null).length).join(",");
}

window.addEventListener("resize", () => {
  for (const c of Object.values(charts)) c.setSize({width: Math.max(280, $(c.element).clientWidth - 8), height: 240});
});

function drawResults() {
  const rows = [...runs.values()].filter(r => r.result || r.reference);
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th>run</th><th>test accuracy (10,000)</th><th>test loss</th><th>the report</th><th>ours, 5 seeds</th><th>our committed run, same seed</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const run of rows) {
    const ref = run.reference || {}, same = ref.by_seed && run.settings.n_train === 60000 &&
      run.settings.epochs === 3 ? ref.by_seed[String(run.settings.seed)] : null;
    const tr = document.createElement("tr");
    const cells = [
      run.id,
      run.result ? pct(run.result.test_accuracy) : run.state,
      run.result && run.result.test_loss != null ? run.result.test_loss.toFixed(4) : "—",
      ref.report_accuracy != null ? `${pct(ref.report_accuracy)} (loss ${ref.report_loss})` : "—",
      ref.acc_mean != null ? `${pct(ref.acc_mean)} ± ${pct(ref.acc_std)}` : "—",
      same ? `${pct(same.test_accuracy)}, loss ${same.test_loss.toFixed(4)}` + (run.result ? agreement(run.result, same) : "") : "—",
    ];
    for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    tr.firstChild.style.color = run.colour;
    body.append(tr);
  }
  table.append(body);
  $("results").replaceChildren(...(rows.length ? [table] : []));
}

// the page's result against our committed run: every bit, or the last bits of the test
// loss only (the test set's matmul is BLAS, whose rounding depends on the CPU it ran on)
function agreement(mine, committed) {
  if (mine.test_loss === committed.test_loss && mine.test_accuracy === committed.test_accuracy) return " (identical)";
  const gap = Math.abs(mine.test_loss - committed.test_loss);
  if (mine.test_accuracy === committed.test_accuracy && gap <= 1e-12 * committed.test_loss)
    return ` (same; test loss ${gap.toExponential(0)} apart: BLAS rounding of the test set)`;
  return " (differs)";
}

function drawWeights() {
  const run = runs.get(selected);
  const holder = $("weights");
  if (!run || !run.weights) { holder.replaceChildren(); $("weights-step").textContent = ""; return; }
  $("weights-step").textContent = `(${run.id}, step ${run.weightsStep.toLocaleString()})`;
  while (holder.children.length < run.weights.length) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    holder.append(canvas);
  }
  run.weights.forEach((encoded, unit) => {
    const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
    const canvas = holder.children[unit], context = canvas.getContext("2d");
    const image = context.createImageData(28, 28);
    bytes.forEach((v, i) => {   // 128 is 0: white; toward 255 red, toward 0 blue
      const t = (v - 128) / 127, fade = 255 * (1 - Math.abs(t));
      image.data.set(t >= 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    canvas.title = `unit ${unit}`;
  });
}

// --- the drawing pad ------------------------------------------------------------------------

const pad = $("pad"), ink = pad.getContext("2d");
let drawing = false, hasInk = false, inFlight = false, again = false;

function clearPad() { ink.fillStyle = "#000"; ink.fillRect(0, 0, pad.width, pad.height); hasInk = false; $("label").textContent = "–"; }
function at(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}
pad.addEventListener("pointerdown", event => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = hasInk = true;
  const [x, y] = at(event);
  Object.assign(ink, {strokeStyle: "#fff", lineWidth: pad.width / 14, lineCap: "round", lineJoin: "round"});
  ink.beginPath(); ink.moveTo(x, y); ink.lineTo(x + 0.01, y); ink.stroke();
});
pad.addEventListener("pointermove", event => { if (!drawing) return; const [x, y] = at(event); ink.lineTo(x, y); ink.stroke(); predict(); });
for (const name of ["pointerup", "pointercancel"]) pad.addEventListener(name, () => { if (drawing) { drawing = false; predict(); } });
$("clear").addEventListener("click", clearPad);

async function predict() {
  const run = runs.get(selected);
  // only a run with weights can answer: not queued, not cancelled or failed, not being cancelled
  if (!hasInk || !run || run.cancelling || !["running", "paused", "done"].includes(run.state)) return;
  if (inFlight) { again = true; return; }
  inFlight = true; again = false;
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({run: run.id, image: pad.toDataURL("image/png")}),
    });
    const answer = await response.json();
    if (response.ok) {
      $("label").textContent = answer.label;
      $("pad-status").textContent = `${run.id} at step ${run.step.toLocaleString()}: ` +
        `${(100 * answer.probabilities[answer.label]).toFixed(1)}% sure.`;
    } else {
      $("pad-status").textContent = answer.error.includes("blank") ? "Draw a digit on the black pad." : answer.error;
    }
  } catch (err) {
    $("pad-status").textContent = "The server does not answer; is `mlp-lib serve` running?";
  } finally {
    inFlight = false;
    if (again) predict();
  }
}

// --- start: presets, then the runs the server already has (a reload keeps them) -------------

async function start() {
  clearPad();
  await loadPresets();
  const answer = await (await fetch("/api/runs")).json();
  for (const info of answer.runs) follow(info);
  if (answer.runs.length) select(answer.runs[answer.runs.length - 1].id);
  changed();
}
start();
