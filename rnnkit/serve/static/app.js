// The page of `rnnkit serve`: it speaks only the documented /v1 API (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
const PANELS = { lm: "lm", translate: "translate-panel", classify: "predict-panel",
                 tag: "predict-panel" };
const KEY = "rnnkit-api-key";
let models = [];
let stopGeneration = null;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attributes);
  node.append(...children);
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Every /v1 call: the API key if one is set, and an error body's message thrown as an Error.
async function api(path, body, signal) {
  const headers = {};
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: body ? "POST" : "GET", headers, signal,
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try { message = JSON.parse(text).error.message; } catch { /* not an error body */ }
    throw new Error(message);
  }
  return response;
}

// Run an action, showing its error instead of throwing it.
async function attempt(action) {
  showError("");
  try {
    await action();
  } catch (e) {
    if (e.name !== "AbortError") showError(e.message);
  }
}

function currentModel() {
  return models.find((m) => m.name === $("model").value);
}

async function loadModels() {
  models = [];
  $("model").replaceChildren();
  const response = await api("/v1/models");
  models = (await response.json()).models;
  for (const m of models) {
    $("model").append(element("option", { value: m.name, textContent: `${m.name} (${m.task})` }));
  }
  chooseModel();
}

function chooseModel() {
  const model = currentModel();
  for (const panel of document.querySelectorAll(".panel")) {
    panel.hidden = !model || panel.id !== PANELS[model.task];
  }
  $("model-info").textContent = model
    ? `${model.cell.toUpperCase()}, ${model.num_layers} × ${model.hidden_size} units · ` +
      `${model.parameters.toLocaleString("en")} parameters`
    : "";
  $("predictions").replaceChildren();
}

function lines(id) {
  return $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);
}

// -- lm: streamed generation ---------------------------------------------------------------

// The Server-Sent Events of a fetch response, one {event, data} per frame.
async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

async function generate() {
  const prompt = $("prompt").value;
  const completion = document.createTextNode("");
  $("output").replaceChildren(element("span", { className: "prompt", textContent: prompt }),
                              completion);
  $("finish").textContent = "generating…";
  const controller = new AbortController();
  stopGeneration = () => controller.abort();
  $("generate").disabled = true;
  $("stop").disabled = false;
  try {
    const response = await api("/v1/generate", {
      model: currentModel().name, prompt, stream: true,
      temperature: Number($("temperature").value),
      top_k: Number($("top-k").value),
      top_p: Number($("top-p").value),
      max_new_tokens: Number($("max-new-tokens").value),
    }, controller.signal);
    for await (const { event, data } of serverSentEvents(response)) {
      if (event === "token") completion.appendData(data.text);
      if (event === "error") throw new Error(data.error.message);
      if (event === "done") {
        completion.data = data.text.slice(prompt.length);  // the joined text is the truth
        $("finish").textContent = `done: ${data.finish_reason}, ${data.tokens} tokens`;
      }
    }
  } catch (e) {
    $("finish").textContent = e.name === "AbortError" ? "stopped" : "";
    throw e;
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

// -- translate: n-best and attention ---------------------------------------------------------

async function translate() {
  const response = await api("/v1/translate", {
    model: currentModel().name, sentences: lines("sentences"), attention: true,
    beam: Number($("beam").value), n_best: Number($("n-best").value),
  });
  const { translations } = await response.json();
  const items = translations.map((t) => {
    const hypotheses = t.hypotheses.map((h) => element("li", {},
      element("span", { className: "score", textContent: h.score.toFixed(3) }), " ",
      h.text || "(empty)"));
    const item = element("li", { className: "translation", title: "Show its attention" },
      element("div", { className: "source", textContent: t.source }),
      element("div", { className: "target", textContent: t.text || "(empty)" }),
      element("ol", { className: "n-best" }, ...hypotheses));
    item.addEventListener("click", () => chooseTranslation(item, t.attention));
    return item;
  });
  $("translations").replaceChildren(...items);
  $("attention").hidden = !items.length;
  if (items.length) chooseTranslation(items[0], translations[0].attention);
}

function chooseTranslation(item, attention) {
  for (const other of $("translations").children) other.classList.toggle("chosen", other === item);
  drawHeatmap(attention);
}

function drawHeatmap({ weights, source_tokens: source, target_tokens: target }) {
  const header = element("tr", {}, element("th"),
    ...source.map((s) => element("th", { className: "source-token", textContent: s })));
  const rows = target.map((t, i) => element("tr", {},
    element("th", { className: "target-token", textContent: t }),
    ...source.map((s, j) => {
      const reading = `source ${s} → target ${t}: ${weights[i][j].toFixed(3)}`;
      const cell = element("td",
        { className: "heat-cell", title: reading, style: `--weight: ${weights[i][j]}` });
      cell.addEventListener("mouseenter", () => { $("heat-readout").textContent = reading; });
      return cell;
    })));
  $("heatmap").replaceChildren(element("thead", {}, header), element("tbody", {}, ...rows));
  $("heat-readout").textContent = "Hover a cell: source → target: weight";
}

// -- classify and tag ----------------------------------------------------------------------

async function predict() {
  const model = currentModel();
  const inputs = lines("texts");
  const field = model.task === "tag" ? "sentences" : "texts";
  const response = await api("/v1/predict", { model: model.name, [field]: inputs });
  const { task, predictions } = await response.json();
  $("predictions").replaceChildren(...predictions.map(task === "tag" ? tagged : labelled));
}

function labelled({ text, label, probabilities }) {
  const bars = Object.entries(probabilities).map(([name, p]) => element("div",
    { className: name === label ? "bar chosen" : "bar", style: `--p: ${p}` },
    element("span", { className: "label", textContent: name }),
    element("span", { className: "track" }, element("span", { className: "fill" })),
    element("span", { className: "value", textContent: `${(100 * p).toFixed(1)}%` })));
  return element("div", { className: "prediction" },
    element("div", { className: "text", textContent: text }), ...bars);
}

// A tag's colour: a hue from its name, so a tag keeps its colour across requests.
function hue(tag) {
  let h = 0;
  for (const c of tag) h = (h * 31 + c.codePointAt(0)) % 360;
  return (h * 47) % 360;
}

function tagged({ tokens, tags }) {
  const words = tokens.map((token, i) => element("span",
    { className: "tagged", title: tags[i], style: `--hue: ${hue(tags[i])}` },
    element("span", { className: "word", textContent: token }),
    element("span", { className: "tag", textContent: tags[i] })));
  return element("div", { className: "prediction sentence" }, ...words);
}

// -- wiring --------------------------------------------------------------------------------

function showValue(input) {
  document.querySelector(`output[for="${input.id}"]`).textContent = input.value;
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) ?? "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    attempt(loadModels);
  });
  $("model").addEventListener("change", () => { showError(""); chooseModel(); });
  for (const input of document.querySelectorAll("input[type=range]")) {
    showValue(input);
    input.addEventListener("input", () => showValue(input));
  }
  $("generate").addEventListener("click", () => attempt(generate));
  $("stop").addEventListener("click", () => stopGeneration?.());
  $("translate").addEventListener("click", () => attempt(translate));
  $("predict").addEventListener("click", () => attempt(predict));
  attempt(loadModels);
});
