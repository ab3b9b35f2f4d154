// The page of `mlp-lib serve`: draw, send the drawing to /api/predict, draw the answer.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const modelSelect = document.getElementById("model");
const statusLine = document.getElementById("status");
let models = [];          // from GET /api/models
let drawing = false;      // a stroke is in progress
let inFlight = false;     // a predict request is waiting for its answer
let pending = false;      // the drawing changed while a request was in flight
let hasInk = false;

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  showEmpty();
}

function showEmpty() {
  document.getElementById("label").textContent = "–";
  document.getElementById("confidence").textContent = "";
  drawInput(new Array(784).fill(0));
  drawBars(new Array(10).fill(0), -1);
  statusLine.textContent = currentModel() ? "Draw a digit on the black pad." : statusLine.textContent;
}

function currentModel() {
  return models.find(m => m.name === modelSelect.value && m.ready);
}

// --- models -----------------------------------------------------------------

async function loadModels() {
  let answer;
  try {
    answer = await (await fetch("/api/models")).json();
  } catch (err) {
    statusLine.textContent = "The server does not answer; is `mlp-lib serve` running?";
    setTimeout(loadModels, 4000);
    return;
  }
  const chosen = modelSelect.value;
  models = answer.models;
  modelSelect.replaceChildren(...models.map(m => {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.ready ? m.name : `${m.name} (${stateText(m)})`;
    option.disabled = !m.ready;
    return option;
  }));
  const keep = models.find(m => m.name === chosen && m.ready) || models.find(m => m.ready);
  if (keep) modelSelect.value = keep.name;
  describeModel();
  showTraining();
  if (!keep) statusLine.textContent = "Training the first model; this page updates by itself.";
  else if (!hasInk) statusLine.textContent = "Draw a digit on the black pad.";
  if (models.some(m => m.state === "queued" || m.state === "training")) setTimeout(loadModels, 1000);
}

function stateText(m) {
  if (m.state === "failed") return "failed";
  if (m.state === "training") return `training ${Math.floor(100 * (m.progress || 0))}%`;
  return m.state === "queued" ? "waiting to train" : m.state;
}

function percent(accuracy) {
  return accuracy === null || accuracy === undefined ? "not measured" : `${(100 * accuracy).toFixed(2)}%`;
}

// one bar per default model still training (or waiting), so nobody waits on a blank page
function showTraining() {
  const holder = document.getElementById("training");
  const busy = models.filter(m => m.state === "queued" || m.state === "training" || m.state === "failed");
  holder.hidden = busy.length === 0;
  holder.replaceChildren(...busy.map(m => {
    const row = document.createElement("div");
    row.className = "training-row";
    row.dataset.model = m.name;
    const label = document.createElement("label");
    label.textContent = `${m.name}: ${stateText(m)}`;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = m.progress || 0;
    bar.id = `progress-${m.name}`;
    label.htmlFor = bar.id;
    row.append(label, bar);
    return row;
  }));
}

function describeModel() {
  const m = currentModel();
  document.getElementById("model-about").textContent = m
    ? `${m.description} (layers ${m.layer_sizes.join("-")}, ${m.activation}); ` +
      `test accuracy ${percent(m.test_accuracy)}` : "";
}

modelSelect.addEventListener("change", () => { describeModel(); requestPrediction(); });

// --- drawing ----------------------------------------------------------------

function position(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", event => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  const [x, y] = position(event);
  ink.strokeStyle = "#fff";
  ink.lineWidth = pad.width / 14;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(x, y);
  ink.lineTo(x + 0.01, y);
  ink.stroke();
  hasInk = true;
});

pad.addEventListener("pointermove", event => {
  if (!drawing) return;
  const [x, y] = position(event);
  ink.lineTo(x, y);
  ink.stroke();
  requestPrediction();        // live, while the stroke is drawn
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  requestPrediction();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);
pad.addEventListener("keydown", event => {
  if (["Delete", "Backspace", "Escape", "c"].includes(event.key)) { clearPad(); event.preventDefault(); }
});

// --- images from files ------------------------------------------------------

function openFile(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg)$/.test(file.type)) {
    statusLine.textContent = `${file.name}: only PNG and JPEG images are read`;
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    const picture = new Image();
    picture.onload = () => {
      const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
      ink.fillStyle = "#fff";                 // photos are usually dark ink on light paper
      ink.fillRect(0, 0, pad.width, pad.height);
      ink.drawImage(picture, (pad.width - picture.width * scale) / 2,
                    (pad.height - picture.height * scale) / 2,
                    picture.width * scale, picture.height * scale);
      hasInk = true;
    };
    picture.src = reader.result;
    sendPrediction(reader.result);            // the server prepares the original file
  };
  reader.readAsDataURL(file);
}
document.getElementById("file").addEventListener("change", event => openFile(event.target.files[0]));
pad.addEventListener("dragover", event => event.preventDefault());
pad.addEventListener("drop", event => { event.preventDefault(); openFile(event.dataTransfer.files[0]); });

// --- predictions ------------------------------------------------------------

function requestPrediction() {
  if (!hasInk || !currentModel()) return;
  if (inFlight) { pending = true; return; }
  sendPrediction(pad.toDataURL("image/png"));
}

async function sendPrediction(image) {
  inFlight = true;
  pending = false;
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image: image, model: modelSelect.value}),
    });
    const answer = await response.json();
    if (response.ok) show(answer);
    else statusLine.textContent = answer.error.includes("blank")
      ? "Draw a digit on the black pad." : `The server said: ${answer.error}`;
  } catch (err) {
    statusLine.textContent = "The server does not answer; is `mlp-lib serve` running?";
  } finally {
    inFlight = false;
    if (pending) requestPrediction();
  }
}

function show(answer) {
  const top = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  document.getElementById("label").textContent = String(answer.label);
  document.getElementById("confidence").textContent =
    `${(100 * answer.probabilities[top]).toFixed(1)}% sure (model ${answer.model})`;
  statusLine.textContent = `Model ${answer.model} reads ${answer.label}.`;
  drawInput(answer.input);
  drawBars(answer.probabilities, top);
  drawLayers(answer.activations, models.find(m => m.name === answer.model));
  drawWeights(answer.first_layer);
}

function drawInput(pixels) {
  const canvas = document.getElementById("input");
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  pixels.forEach((p, i) => {
    const v = Math.round(255 * p);
    image.data.set([v, v, v, 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
}

function drawBars(probabilities, top) {
  const bars = document.getElementById("bars");
  if (bars.children.length !== 10) {
    bars.replaceChildren(...probabilities.map((_, digit) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("role", "listitem");
      bar.innerHTML = `<span class="pct small"></span><div class="fill"></div><span class="digit">${digit}</span>`;
      return bar;
    }));
  }
  probabilities.forEach((p, digit) => {
    const bar = bars.children[digit];
    bar.classList.toggle("top", digit === top);
    bar.querySelector(".fill").style.height = `${(100 * p).toFixed(1)}px`;
    bar.querySelector(".pct").textContent = p >= 0.005 ? `${Math.round(100 * p)}%` : "";
    bar.setAttribute("aria-label", `digit ${digit}: ${(100 * p).toFixed(1)} percent`);
    bar.dataset.probability = p;
  });
}

function drawLayers(activations, model) {
  const holder = document.getElementById("layers");
  const dead = (model && model.dead) || activations.map(() => []);
  holder.replaceChildren(...activations.map((values, l) => {
    const columns = Math.ceil(Math.sqrt(values.length * 2));
    const rows = Math.ceil(values.length / columns);
    const cell = values.length > 600 ? 6 : 9;
    const canvas = document.createElement("canvas");
    canvas.width = columns * cell;
    canvas.height = rows * cell;
    const context = canvas.getContext("2d");
    const largest = Math.max(...values, 1e-9);
    const deadSet = new Set(dead[l] || []);
    let active = 0;
    values.forEach((v, unit) => {
      const x = (unit % columns) * cell, y = Math.floor(unit / columns) * cell;
      if (deadSet.has(unit)) context.fillStyle = "#cf222e";
      else {
        const level = Math.round(255 * Math.max(0, v) / largest);
        if (v > 0) active += 1;
        context.fillStyle = `rgb(${level}, ${level}, ${Math.min(255, level + 40 * (v > 0))})`;
      }
      context.fillRect(x + 0.5, y + 0.5, cell - 1, cell - 1);
    });
    const figure = document.createElement("figure");
    figure.className = "layer";
    figure.dataset.units = values.length;
    figure.dataset.active = active;
    const caption = document.createElement("figcaption");
    const deadText = model && model.activation === "relu" && model.dead ? `, ${deadSet.size} dead` : "";
    caption.textContent = `layer ${l + 1}: ${values.length} units, ${active} active${deadText}`;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", caption.textContent);
    figure.append(canvas, caption);
    return figure;
  }));
}

function drawWeights(units) {
  const holder = document.getElementById("weights");
  holder.replaceChildren(...units.map(unit => {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    const context = canvas.getContext("2d");
    const image = context.createImageData(28, 28);
    const largest = Math.max(...unit.weights.map(Math.abs), 1e-9);
    unit.weights.forEach((w, i) => {
      const t = Math.abs(w) / largest, fade = Math.round(255 * (1 - t));
      const colour = w >= 0 ? [255, fade, fade] : [fade, fade, 255];
      image.data.set([...colour, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = `unit ${unit.unit}, activity ${unit.activation.toFixed(2)}`;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `first-layer weights of ${caption.textContent}`);
    figure.append(canvas, caption);
    return figure;
  }));
}

clearPad();
loadModels();
