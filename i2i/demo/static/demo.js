// The i2i demo page: draw on the input canvas, the server translates it after each stroke.
// Talks to the routes of i2i/demo/server.py only; loads nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("input");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const output = $("output");

// What each task's canvas draws with (Task.canvas): the blank fill, the tools, crisp or smooth.
const BLANK = { palette: null, pen: [255, 255, 255], gray: [128, 128, 128], holes: [128, 128, 128], color: [255, 255, 255] };
const CRISP = { palette: true, holes: true, pen: false, gray: false, color: false };

const state = {
  models: [],
  model: null,
  index: 0,
  color: [0, 0, 0],
  undo: [],
  seq: 0,
  timer: null,
  outputUrl: null,
  translations: 0,
  drawing: false,
  last: null,
};

function rgb(c) { return `rgb(${c[0]}, ${c[1]}, ${c[2]})`; }

function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
  document.body.dataset.error = error ? text : "";
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.error}`;
  } catch (e) {
    return `${resp.status} ${resp.statusText}`;
  }
}

// ------------------------------------------------------------------ tools

function toolButton(label, color, pressed) {
  const b = document.createElement("button");
  b.type = "button";
  const sw = document.createElement("span");
  sw.className = "swatch";
  sw.style.background = rgb(color);
  b.append(sw, document.createTextNode(label));
  b.dataset.color = color.join(",");
  b.setAttribute("aria-pressed", pressed ? "true" : "false");
  b.addEventListener("click", () => pickColor(color, b));
  return b;
}

function pickColor(color, button) {
  state.color = color;
  for (const b of $("tools").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", b === button ? "true" : "false");
  }
}

function buildTools(model) {
  const tools = $("tools");
  tools.replaceChildren();
  const kind = model.canvas;
  if (kind === "palette") {
    model.palette.forEach((cls, i) => {
      const b = toolButton(cls.name, cls.color, i === 1 % model.palette.length);
      b.dataset.class = String(i);
      tools.append(b);
    });
    state.color = model.palette[1 % model.palette.length].color;
  } else if (kind === "pen") {
    tools.append(toolButton("pen", [0, 0, 0], true), toolButton("eraser", [255, 255, 255], false));
    state.color = [0, 0, 0];
  } else if (kind === "holes") {
    tools.append(toolButton("cut a hole", [0, 0, 0], true));
    state.color = [0, 0, 0];
  } else if (kind === "gray") {
    const label = document.createElement("label");
    const range = document.createElement("input");
    Object.assign(range, { type: "range", min: 0, max: 255, value: 64, id: "gray" });
    const sw = document.createElement("span");
    sw.className = "swatch";
    const update = () => {
      const v = Number(range.value);
      state.color = [v, v, v];
      sw.style.background = rgb(state.color);
    };
    range.addEventListener("input", update);
    label.append("gray ", range, " ", sw);
    tools.append(label);
    update();
  } else {
    const label = document.createElement("label");
    const picker = document.createElement("input");
    Object.assign(picker, { type: "color", value: "#3366cc", id: "color" });
    const update = () => {
      const h = picker.value;
      state.color = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
    };
    picker.addEventListener("input", update);
    label.append("colour ", picker);
    tools.append(label);
    update();
  }
}

// ------------------------------------------------------------------ the canvas

function blank(model) {
  const c = BLANK[model.canvas] || model.palette[0].color;
  ctx.fillStyle = rgb(c);
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function setCanvasSize(w, h) {
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  $("input-size").textContent = `${w}×${h}`;
}

function pushUndo() {
  state.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  if (state.undo.length > 30) state.undo.shift();
}

function toCanvas(e) {
  const r = canvas.getBoundingClientRect();
  return [
    ((e.clientX - r.left) * canvas.width) / r.width,
    ((e.clientY - r.top) * canvas.height) / r.height,
  ];
}

function brushSize() {
  // the slider is in screen pixels; the canvas may be shown larger or smaller than it is
  const r = canvas.getBoundingClientRect();
  return Math.max(1, (Number($("size").value) * canvas.width) / r.width);
}

function stroke(from, to) {
  const size = brushSize();
  ctx.fillStyle = ctx.strokeStyle = rgb(state.color);
  if (CRISP[state.model.canvas]) {
    // label maps and holes take exact colours: square stamps on whole pixels, no anti-aliasing
    const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1]) / Math.max(1, size / 3)));
    const s = Math.max(1, Math.round(size));
    for (let i = 0; i <= steps; i++) {
      const x = from[0] + ((to[0] - from[0]) * i) / steps;
      const y = from[1] + ((to[1] - from[1]) * i) / steps;
      ctx.fillRect(Math.round(x - s / 2), Math.round(y - s / 2), s, s);
    }
  } else {
    ctx.lineWidth = size;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
  }
}

canvas.addEventListener("pointerdown", (e) => {
  if (!state.model || e.button !== 0) return;
  canvas.setPointerCapture(e.pointerId);
  pushUndo();
  state.drawing = true;
  state.last = toCanvas(e);
  stroke(state.last, state.last);
});
canvas.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const p = toCanvas(e);
  stroke(state.last, p);
  state.last = p;
});
function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  document.body.dataset.strokes = String(Number(document.body.dataset.strokes || 0) + 1);
  schedule();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

async function drawImageBlob(blob) {
  const bitmap = await createImageBitmap(blob);
  pushUndo();
  setCanvasSize(bitmap.width, bitmap.height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
}

// ------------------------------------------------------------------ translation

function schedule(delay = 200) {
  clearTimeout(state.timer);
  state.timer = setTimeout(translate, delay);
}

function canvasBlob() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function translate() {
  const seq = ++state.seq;
  const mode = $("mode").value;
  const seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
  const blob = await canvasBlob();
  const url = `/api/translate?model=${state.index}&mode=${mode}&seed=${seed}`;
  const t0 = performance.now();
  setStatus("translating…");
  let resp;
  try {
    resp = await fetch(url, { method: "POST", body: blob, headers: { "Content-Type": "image/png" } });
  } catch (e) {
    if (seq === state.seq) setStatus(`the server did not answer: ${e}`, true);
    return;
  }
  if (seq !== state.seq) return; // a newer drawing is on its way
  if (!resp.ok) {
    setStatus(await errorText(resp), true);
    return;
  }
  const out = await resp.blob();
  if (seq !== state.seq) return;
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(out);
  output.src = state.outputUrl;
  await output.decode();
  $("download-output").href = state.outputUrl;
  $("output-size").textContent = `${output.naturalWidth}×${output.naturalHeight}`;
  state.translations += 1;
  document.body.dataset.translations = String(state.translations);
  const ms = Math.round(performance.now() - t0);
  setStatus(
    `${state.model.name}: ${canvas.width}×${canvas.height} in ${mode} mode` +
      (mode === "paper" ? ` (seed ${seed})` : "") +
      `, ${resp.headers.get("X-Translate-Ms")} ms in the model, ${ms} ms in all`
  );
}

// ------------------------------------------------------------------ inputs

async function loadExample(i) {
  const resp = await fetch(`/api/example?model=${state.index}&index=${i}`);
  if (!resp.ok) {
    setStatus(await errorText(resp), true);
    return;
  }
  await drawImageBlob(await resp.blob());
  await translate();
}

function buildExamples(model) {
  const box = $("examples");
  box.replaceChildren();
  for (let i = 0; i < model.examples; i++) {
    const img = document.createElement("img");
    img.src = `/api/example?model=${state.index}&index=${i}`;
    img.alt = `example ${i + 1}`;
    img.title = "draw on this example";
    img.dataset.index = String(i);
    img.addEventListener("click", () => loadExample(i));
    box.append(img);
  }
  $("examples-note").textContent = model.examples_note;
}

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  const name = encodeURIComponent(file.name);
  let resp;
  try {
    resp = await fetch(`/api/upload?model=${state.index}&name=${name}`, { method: "POST", body: file });
  } catch (e) {
    setStatus(`the upload failed: ${e}`, true);
    return;
  } finally {
    $("upload").value = "";
  }
  if (!resp.ok) {
    setStatus(await errorText(resp), true);
    return;
  }
  await drawImageBlob(await resp.blob());
  await translate();
});

// ------------------------------------------------------------------ controls

$("size").addEventListener("input", () => { $("size-value").textContent = $("size").value; });
$("undo").addEventListener("click", () => {
  const last = state.undo.pop();
  if (!last) return;
  setCanvasSize(last.width, last.height);
  ctx.putImageData(last, 0, 0);
  schedule(0);
});
$("clear").addEventListener("click", () => {
  pushUndo();
  blank(state.model);
  schedule(0);
});
function modeChanged() {
  $("seed").disabled = $("reseed").disabled = $("mode").value !== "paper";
  schedule(0);
}
$("mode").addEventListener("change", modeChanged);
$("seed").addEventListener("change", () => schedule(0));
$("reseed").addEventListener("click", () => {
  $("seed").value = String(Math.floor(Math.random() * 1e6));
  schedule(0);
});
$("download-input").addEventListener("click", () => {
  $("download-input").href = canvas.toDataURL("image/png");
});

function sameDrawing(a, b) {
  return a && b && a.canvas === b.canvas && JSON.stringify(a.palette) === JSON.stringify(b.palette);
}

async function selectModel(i) {
  const previous = state.model;
  state.index = i;
  state.model = state.models[i];
  const model = state.model;
  $("summary").textContent = `${model.task}: ${model.summary}`;
  $("mode").value = model.mode;
  buildExamples(model);
  if (sameDrawing(previous, model)) {
    modeChanged(); // the same kind of drawing: keep it, translate it with this model
    return;
  }
  buildTools(model);
  state.undo = [];
  if (model.examples > 0) {
    $("seed").disabled = $("reseed").disabled = model.mode !== "paper";
    await loadExample(0);
  } else {
    setCanvasSize(model.size, model.size);
    blank(model);
    modeChanged();
  }
}

$("model").addEventListener("change", () => selectModel(Number($("model").value)));

async function start() {
  const resp = await fetch("/api/models");
  if (!resp.ok) {
    setStatus(await errorText(resp), true);
    return;
  }
  state.models = (await resp.json()).models;
  state.models.forEach((m, i) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = `${m.name} (${m.task}, ${m.generator})`;
    $("model").append(o);
  });
  if (state.models.length) await selectModel(0);
  document.body.dataset.ready = "1";
}

start();
