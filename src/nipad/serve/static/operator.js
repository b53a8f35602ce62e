// The operator's page of `nipad serve`: talks only to the service that served it (same origin, relative URLs).
"use strict";

const POOLED = "__all__"; // older services name the pooled thresholds so; newer ones give threshold_class null
let thresholds = new Map(); // product name -> its entry of GET /classes

class ApiError extends Error {}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function number(x, digits = 4) {
  return typeof x === "number" && Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : "—";
}

// The service's JSON answer, or ApiError with a sentence a person can read: the service's own
// {"error", "status"} where it gave one, else what HTTP or the network said.
async function api(method, url, options = {}) {
  let response;
  try {
    response = await fetch(url, { method, ...options });
  } catch (err) {
    throw new ApiError(`Cannot reach the service (${err.message}). Is it still running?`);
  }
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: said below */ }
  if (!response.ok) {
    if (data && typeof data.error === "string") {
      throw new ApiError(`Refused (${data.status || response.status}): ${data.error}`);
    }
    const detail = text.trim().slice(0, 300);
    throw new ApiError(`Error ${response.status} ${response.statusText}${detail ? `: ${detail}` : ""}`);
  }
  if (data === null) throw new ApiError(`The service's answer (${response.status}) is not JSON: ${text.slice(0, 300)}`);
  return data;
}

async function loadHealth() {
  const line = document.getElementById("health");
  try {
    const response = await fetch("/health");
    const h = await response.json();
    line.textContent = `${h.model} model · ${h.classes} products · image size ${h.image_size} · ${h.device} · ` +
      `nipad ${h.version} · ${h.status}` + (h.problem ? ` — ${h.problem}` : "");
    line.className = h.status === "ok" ? "muted" : "error";
  } catch (err) {
    line.textContent = `Cannot reach the service (${err.message}).`;
    line.className = "error";
  }
}

async function loadClasses() {
  const body = document.getElementById("classes");
  const problem = document.getElementById("classes-error");
  try {
    const data = await api("GET", "/classes");
    thresholds = new Map(data.classes.map((c) => [c.name, c]));
    body.replaceChildren(...data.classes.map((c) => el("tr", { "data-class": c.name },
      el("td", { text: c.name }), el("td", { className: "num", text: String(c.prompts) }),
      el("td", { className: "num", text: c.calibrated ? number(c.image_threshold, 6) : "pooled" }),
      el("td", { text: c.image_threshold_method || "—" }),
      el("td", { className: "num", text: c.calibration_images == null ? "—" : String(c.calibration_images) }))));
    const select = document.getElementById("inspect-class");
    const chosen = select.value;
    const options = data.classes.map((c) => el("option", { value: c.name, text: c.name }));
    select.replaceChildren(select.options[0], ...options);
    select.value = thresholds.has(chosen) ? chosen : "";
    document.getElementById("class-names").replaceChildren(...data.classes.map((c) => el("option", { value: c.name })));
    problem.hidden = true;
  } catch (err) {
    problem.textContent = err.message;
    problem.hidden = false;
  }
}

function thresholdOf(result) {
  if (typeof result.image_threshold === "number") return result.image_threshold;
  const name = result.threshold_class;
  const own = name && name !== POOLED ? thresholds.get(name) : null;
  return own && own.calibrated ? own.image_threshold : null;
}

function showResult(card, result) {
  const defect = Boolean(result.pred_label);
  const threshold = thresholdOf(result);
  const judgedBy = result.threshold_class && result.threshold_class !== POOLED ? result.threshold_class : null;
  const normalized = Math.min(Math.max(Number(result.pred_score_normalized) || 0, 0), 1);
  const meter = el("div", { className: "meter", title: "score against the threshold (the mark)" },
    el("div", { className: defect ? "fill defect" : "fill" }), el("div", { className: "mark" }));
  // set through CSSOM: the page's Content-Security-Policy allows no style attribute
  meter.firstChild.style.width = `${(100 * normalized).toFixed(1)}%`;
  const details = el("dl", {},
    el("dt", { text: "score" }),
    el("dd", { className: "score", text: threshold === null
      ? `${number(result.pred_score)} (normalised ${number(normalized, 3)}; the threshold is at 0.5)`
      : `${number(result.pred_score)} ${defect ? ">" : "≤"} threshold ${number(threshold)}` }),
    el("dt", { text: "thresholds of" }),
    el("dd", { text: judgedBy || "all products pooled (no threshold of its own)" }),
    el("dt", { text: "product" }), el("dd", { text: result.class || "—" }));
  if (typeof result.defect_area_fraction === "number") {
    details.append(el("dt", { text: "defect area" }),
      el("dd", { text: `${(100 * result.defect_area_fraction).toFixed(1)} %` }));
  }
  const parts = [el("div", { className: "file", text: result.file || card.dataset.file })];
  if (result.overlay_png) {
    parts.push(el("img", { className: "overlay", alt: `heatmap of ${result.file}`,
                           src: `data:image/png;base64,${result.overlay_png}` }));
  }
  parts.push(el("span", { className: defect ? "verdict defect" : "verdict ok", text: defect ? "DEFECT" : "OK" }),
             meter, details);
  card.replaceChildren(...parts);
  card.dataset.state = "done";
  card.dataset.verdict = defect ? "DEFECT" : "OK";
}

async function inspect(file, card) {
  const form = new FormData();
  form.append("files", file, file.name);
  const chosen = document.getElementById("inspect-class").value;
  const query = new URLSearchParams({ overlay: "true" });
  if (chosen) query.set("class", chosen);
  try {
    const data = await api("POST", `/predict?${query}`, { body: form });
    showResult(card, data.results[0]);
  } catch (err) {
    card.replaceChildren(el("div", { className: "file", text: file.name }),
                         el("p", { className: "error", text: err.message }));
    card.dataset.state = "error";
  }
}

async function inspectAll(files) {
  const results = document.getElementById("results");
  const jobs = [...files].map((file) => {
    const card = el("div", { className: "card", "data-state": "pending", "data-file": file.name },
      el("div", { className: "file", text: file.name }), el("p", { className: "muted", text: "inspecting…" }));
    results.prepend(card);
    return [file, card];
  });
  const next = async () => { // a few at a time: the service batches them
    while (jobs.length) {
      const [file, card] = jobs.shift();
      await inspect(file, card);
    }
  };
  await Promise.all([next(), next(), next()]);
}

function summary(answer) {
  const lines = [`Added ${answer.prompts} prompt${answer.prompts === 1 ? "" : "s"} to “${answer.class}”.`];
  if (typeof answer.image_threshold === "number") {
    lines.push(`Its image threshold is now ${number(answer.image_threshold, 6)}` +
               (answer.calibration_images ? `, from ${answer.calibration_images} calibration images` : "") +
               (answer.source ? ` (${answer.source}).` : "."));
  }
  if (answer.warning) lines.push(`Note: ${answer.warning}`);
  return lines.join("\n");
}

async function addPrompts(event) {
  event.preventDefault();
  const out = document.getElementById("prompt-answer");
  const name = document.getElementById("prompt-class").value.trim();
  const files = document.getElementById("prompt-files").files;
  const token = document.getElementById("prompt-token").value.trim();
  const count = document.getElementById("prompt-count").value.trim();
  const rate = document.getElementById("prompt-rate").value.trim();
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const query = new URLSearchParams();
  if (count) query.set("prompts", count);
  if (rate) query.set("false_alarm_rate", rate);
  const button = document.getElementById("prompt-submit");
  button.disabled = true;
  out.replaceChildren(el("p", { className: "muted", text: `Sending ${files.length} image(s) for “${name}”…` }));
  try {
    const answer = await api("POST", `/prompts/${encodeURIComponent(name)}?${query}`, {
      body: form, headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    out.replaceChildren(el("div", { className: "answer good", text: summary(answer) }));
    document.getElementById("prompt-files").value = "";
    await loadClasses();
    await loadHealth();
  } catch (err) {
    out.replaceChildren(el("div", { className: "answer bad", text: err.message }));
  } finally {
    button.disabled = false;
  }
}

function setUp() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("inspect-files");
  input.addEventListener("change", () => { inspectAll(input.files); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    inspectAll([...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || f.type === ""));
  });
  // an image dropped beside the zone must not replace the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  document.getElementById("clear-results").addEventListener("click",
    () => document.getElementById("results").replaceChildren());
  document.getElementById("reload-classes").addEventListener("click", loadClasses);
  document.getElementById("prompt-form").addEventListener("submit", addPrompts);
  loadHealth();
  loadClasses();
}

document.addEventListener("DOMContentLoaded", setUp);
