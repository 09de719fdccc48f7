/* crs-risk clinician page: form → POST /v1/risk → risk with its interval, reasons in risk
   points, trend, models. Plain JavaScript, no external assets: the page works offline from the
   service alone. When the service needs a token, the page asks for it once (kept for this
   browser tab only, sessionStorage) and sends it with every API call. */
"use strict";

const PATIENT_FIELDS = ["age_years", "weight_kg", "sex", "product", "marrow_blasts_pct",
  "car_t_dose", "lymphodepletion", "prior_hsct", "prior_blinatumomab", "prior_inotuzumab",
  "extramedullary_disease"];
const NUMERIC = new Set(["age_years", "weight_kg", "marrow_blasts_pct", "car_t_dose"]);
const BOOLEAN = new Set(["prior_hsct", "prior_blinatumomab", "prior_inotuzumab",
  "extramedullary_disease"]);
const TASK_TITLES = {
  severe_crs: "Severe CRS",
  toci_refractory: "Tocilizumab-refractory CRS",
};
const TOKEN_KEY = "crs-risk-token";
const SVG_NS = "http://www.w3.org/2000/svg";
let examples = [];
const modelInfo = {};

const $ = (id) => document.getElementById(id);

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

/* fetch with the token; a 401 opens the token panel and resolves after the user gives one */
async function api(url, options) {
  for (;;) {
    const r = await fetch(url, { ...(options || {}), headers: headers(!!(options && options.body)) });
    if (r.status !== 401) return r;
    await askToken(sessionStorage.getItem(TOKEN_KEY) ? "That token was not accepted." : "");
  }
}

let tokenWaiters = [];
function askToken(message) {
  $("token-panel").hidden = false;
  $("token-message").textContent = message || "This service needs an access token.";
  $("token-input").focus();
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function saveToken(ev) {
  ev.preventDefault();
  const t = $("token-input").value.trim();
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  $("token-input").value = "";
  $("token-panel").hidden = true;
  const waiting = tokenWaiters;
  tokenWaiters = [];
  waiting.forEach((resolve) => resolve());
}

function pct(p) { return p === null || p === undefined ? "–" : (100 * p).toFixed(p < 0.1 ? 1 : 0) + "%"; }

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function loadExamples() {
  try {
    const r = await api("/v1/examples");
    if (!r.ok) return;
    examples = (await r.json()).examples;
    const sel = $("example-select");
    examples.forEach((ex, i) => sel.appendChild(el("option", { value: String(i) }, ex.title)));
  } catch (e) { /* the form still works without examples */ }
}

async function loadModels() {
  try {
    const r = await api("/v1/models");
    if (!r.ok) return;
    const data = await r.json();
    describeModels(data.models);
    data.models.forEach((m) => { modelInfo[m.name] = m; });
    const table = el("table");
    const head = el("tr");
    ["Model", "Version", "Landmark", "AUROC (95% CI)", "Calibration slope", "n / events",
      "Training cohort"]
      .forEach((h) => head.appendChild(el("th", { scope: "col" }, h)));
    table.appendChild(head);
    for (const m of data.models) {
      const a = m.metrics.auroc || {};
      const s = m.metrics.calibration_slope || {};
      const row = el("tr");
      [m.name, "v" + m.version, m.landmark,
        a.value == null ? "–" : `${a.value.toFixed(2)} (${fmt(a.ci_low)}–${fmt(a.ci_high)})`,
        s.value == null ? "–" : s.value.toFixed(2),
        `${m.n_patients ?? "–"} / ${m.n_events ?? "–"}`,
        (m.synthetic === true ? "SYNTHETIC" : m.synthetic === false ? "recorded cohort" : "not recorded") +
        (m.products ? ` · ${m.products.join(", ")}` : "")]
        .forEach((t) => row.appendChild(el("td", {}, t)));
      table.appendChild(row);
    }
    const box = $("models");
    box.replaceChildren(table, el("p", { class: "meta" },
      "Cross-validated performance on the training cohort (digest " +
      (data.models[0]?.cohort_digest || "").slice(0, 12) + "…); loaded " + data.loaded_at + "."));
    $("model-box").hidden = false;
  } catch (e) { /* optional */ }
}

function fmt(x) { return x == null ? "–" : x.toFixed(2); }

const PRODUCT_NAMES = { tisagenlecleucel: "tisagenlecleucel", ari0001: "ARI-0001",
  cd22car: "CD22-CAR", other: "other products" };

/* title from the products the loaded models were trained on; SYNTHETIC banner per model */
function describeModels(models) {
  const products = [...new Set(models.flatMap((m) => m.products || []))];
  const names = products.map((p) => PRODUCT_NAMES[p] || p);
  const title = names.length ? `CRS risk after CAR T-cell therapy (${names.join(", ")})`
    : "CRS risk after CAR T-cell therapy";
  $("page-title").textContent = title;
  document.title = "crs-risk — " + title;
  const synthetic = models.filter((m) => m.synthetic === true).map((m) => m.name);
  const banner = $("synthetic-banner");
  if (synthetic.length) {
    banner.textContent = `SYNTHETIC — ${synthetic.length === models.length ? "every model" : synthetic.join(", ")} ` +
      "was trained on a simulated cohort: the numbers describe the simulator, not real patients.";
    banner.hidden = false;
  } else banner.hidden = true;
  const sel = $("f-landmark");
  const severe = models.filter((m) => m.task === "severe_crs").map((m) => m.landmark)
    .sort((a, b) => parseFloat(a) - parseFloat(b));
  sel.replaceChildren(el("option", { value: "" }, "latest the data support"),
    ...severe.map((lm) => el("option", { value: lm }, lm)));
}

function fillForm(req) {
  const p = req.patient || {};
  for (const f of PATIENT_FIELDS) {
    const v = p[f];
    $("f-" + f).value = v === null || v === undefined ? "" : String(v);
  }
  $("f-measurements").value = (req.measurements || [])
    .map((m) => [m.hours_from_infusion, m.analyte, (m.qualifier || "") + m.value, m.unit].join(", "))
    .join("\n");
  $("f-events").value = (req.events || [])
    .map((e) => [e.hours_from_infusion ?? "", e.event].concat(e.grade == null ? [] : [e.grade]).join(", "))
    .join("\n");
  $("f-landmark").value = req.landmark || "";
  $("f-as_of_hours").value = req.as_of_hours ?? "";
  $("f-json").value = "";
}

function numberOrText(text) {
  const t = text.trim();
  if (t === "") return null;
  const x = Number(t);
  return Number.isFinite(x) ? x : t;  /* the service names a non-number precisely */
}

function buildRequest() {
  const pasted = $("f-json").value.trim();
  if (pasted) {
    try { return JSON.parse(pasted); } catch (e) {
      throw new Error("The pasted request is not valid JSON: " + e.message);
    }
  }
  const patient = {};
  for (const f of PATIENT_FIELDS) {
    const v = $("f-" + f).value.trim();
    if (v === "") continue;
    patient[f] = NUMERIC.has(f) ? numberOrText(v) : BOOLEAN.has(f) ? v === "true" : v;
  }
  const measurements = [];
  $("f-measurements").value.split("\n").forEach((line) => {
    if (!line.trim()) return;
    const [h, analyte, value, unit] = line.split(",").map((s) => (s || "").trim());
    const m = { hours_from_infusion: numberOrText(h), analyte, unit };
    if (/^[<>]/.test(value)) { m.qualifier = value[0]; m.value = numberOrText(value.slice(1)); }
    else m.value = numberOrText(value);
    measurements.push(m);
  });
  const events = [];
  $("f-events").value.split("\n").forEach((line) => {
    if (!line.trim()) return;
    const [h, event, grade] = line.split(",").map((s) => (s || "").trim());
    const e = { hours_from_infusion: numberOrText(h), event };
    if (grade) e.grade = numberOrText(grade);
    events.push(e);
  });
  const req = { patient, measurements, events };
  if ($("f-landmark").value) req.landmark = $("f-landmark").value;
  const asOf = $("f-as_of_hours").value.trim();
  if (asOf) req.as_of_hours = numberOrText(asOf);
  return req;
}

function where(loc) {
  const parts = loc.filter((x) => x !== "body");
  if (parts[0] === "measurements" && typeof parts[1] === "number") {
    return `Measurement line ${parts[1] + 1}` + (parts[2] ? `, ${parts[2]}` : "");
  }
  if (parts[0] === "events" && typeof parts[1] === "number") {
    return `Event line ${parts[1] + 1}` + (parts[2] ? `, ${parts[2]}` : "");
  }
  if (parts[0] === "patient") return "Baseline " + (parts[1] || "");
  return parts.join(" › ") || "Request";
}

function showErrors(title, items) {
  const box = $("errors");
  const ul = el("ul");
  items.forEach((t) => ul.appendChild(el("li", {}, t)));
  box.replaceChildren(el("strong", {}, title), ul);
  box.hidden = false;
}

function reasons(result) {
  const cs = result.contributions || [];
  const wrap = el("div");
  if (!cs.length) {
    wrap.appendChild(el("p", { class: "meta" }, "No explanation available for this model."));
    return wrap;
  }
  const list = el("ul", { class: "reasons", "data-testid": "reasons-" + result.task });
  cs.forEach((c) => {
    const li = el("li");
    const size = Math.min(100, Math.abs(c.points || 0) * 4);
    li.append(el("span", { class: (c.points || 0) >= 0 ? "pts bar-up" : "pts bar-down",
      style: `width:${size}px`, "aria-hidden": "true" }), el("span", {}, c.text));
    list.appendChild(li);
  });
  wrap.appendChild(list);
  const missing = result.missing_effects || [];
  if (missing.length) {
    wrap.appendChild(el("h5", {}, "Not measured (not a clinical reason)"));
    const ul = el("ul", { class: "missing" });
    missing.forEach((c) => ul.appendChild(el("li", {}, c.text)));
    wrap.appendChild(ul);
  }
  return wrap;
}

function details(result) {
  const d = el("details", { class: "details" });
  d.appendChild(el("summary", {}, "Details for data scientists (log-odds)"));
  const rows = [...(result.contributions || []), ...(result.missing_effects || [])];
  const ul = el("ul");
  ul.appendChild(el("li", {}, `Model log-odds ${fmt(result.log_odds)} = average ${fmt(result.base_value)}` +
    ` + contributions; other variables together ${fmt(result.other_contribution)}.`));
  rows.forEach((c) => ul.appendChild(el("li", {},
    `${c.label}: ${c.value_text} → ${c.contribution >= 0 ? "+" : "−"}${Math.abs(c.contribution).toFixed(2)} log-odds`)));
  const m = modelInfo[result.model];
  if (result.interval && m) ul.appendChild(el("li", {}, `Plausible range: ${m.interval_method}. ${m.interval_covers}`));
  d.appendChild(ul);
  return d;
}

function bandClass(b) { return "band band-" + String(b || "").replace(/\s+/g, "-"); }

function renderResult(r) {
  const box = el("article", { class: "task", "aria-label": TASK_TITLES[r.task] });
  box.appendChild(el("h3", {}, TASK_TITLES[r.task] + ` — ${r.landmark}`));
  if (r.horizon) box.appendChild(el("p", { class: "horizon" }, "Predicts: " + r.horizon));
  if (r.status === "insufficient_data") {
    const p = el("p", { class: "insufficient", "data-testid": "insufficient-" + r.task });
    p.append(el("strong", {}, "Insufficient data — no risk is given. "),
      el("span", {}, "Missing: " + (r.missing_inputs || []).join("; ") + "."));
    box.appendChild(p);
  } else if (r.status !== "scored") {
    box.appendChild(el("p", { "data-testid": "not-scored-" + r.task },
      (r.status === "no_model" ? "No model: " : "Not eligible: ") + (r.reason || "")));
  } else {
    const line = el("p");
    line.append(el("span", { class: "risk", "data-testid": "risk-" + r.task }, pct(r.probability)),
      el("span", { class: bandClass(r.band) }, (r.band || "") + " risk"));
    if (r.interval) {
      line.append(el("span", { class: "interval", "data-testid": "interval-" + r.task },
        ` plausible range ${pct(r.interval.low)}–${pct(r.interval.high)} (rate among patients given this risk)`));
    }
    box.appendChild(line);
    if (r.summary) box.appendChild(el("p", { class: "summary", "data-testid": "summary-" + r.task }, r.summary));
    const u = r.uncertainty;
    if (u && u.n) {
      box.appendChild(el("p", { class: "meta" }, `Validation: ${u.events} of ${u.n} patients ` +
        `in the ${r.band} band had the outcome (${pct(u.observed)}, 95% CI ${pct(u.ci_low)}–${pct(u.ci_high)}). ` +
        `Bands: ${r.thresholds.map(pct).join(" / ")}.`));
    }
    box.appendChild(el("h4", {}, "Reasons"));
    box.appendChild(reasons(r));
    box.appendChild(details(r));
  }
  box.appendChild(el("p", { class: "meta" }, r.model ? `Model ${r.model} v${r.version} · landmark ${r.landmark}` : "No model"));
  const warnings = r.warnings.filter((w) => !["not_eligible", "insufficient_data"].includes(w.code));
  if (warnings.length) {
    const d = el("details", { class: "warnings" });
    d.appendChild(el("summary", {}, `${warnings.length} warning(s) about the inputs`));
    const ul = el("ul");
    warnings.forEach((w) => ul.appendChild(el("li", {}, w.message)));
    d.appendChild(ul);
    box.appendChild(d);
  }
  return box;
}

function renderTrend(points) {
  const pts = points.filter((p) => p.probability !== null);
  const w = 520, h = 200, left = 48, bottom = 30, top = 12, right = 16;
  const root = svg("svg", { width: w, height: h, role: "img", viewBox: `0 0 ${w} ${h}`,
    "aria-label": "Severe-CRS risk by landmark: " + points.map((p) => `${p.landmark} ${pct(p.probability)}`).join(", ") });
  const xs = points.map((_, i) => left + (i + 0.5) * ((w - left - right) / points.length));
  const y = (p) => top + (1 - p) * (h - top - bottom);
  [0, 0.25, 0.5, 0.75, 1].forEach((t) => {
    root.appendChild(svg("line", { x1: left, x2: w - right, y1: y(t), y2: y(t), stroke: "#e2e5ea" }));
    root.appendChild(svg("text", { x: 4, y: y(t) + 4 }, pct(t)));
  });
  points.forEach((p, i) => root.appendChild(svg("text", { x: xs[i] - 10, y: h - 8 }, p.landmark)));
  let d = "";
  points.forEach((p, i) => { if (p.probability !== null) d += (d ? " L " : "M ") + xs[i] + " " + y(p.probability); });
  if (d) root.appendChild(svg("path", { d, fill: "none", stroke: "#274c77", "stroke-width": 2 }));
  points.forEach((p, i) => {
    if (p.probability === null) return;
    root.appendChild(svg("circle", { cx: xs[i], cy: y(p.probability), r: 5, fill: "#274c77" }));
    root.appendChild(svg("text", { x: xs[i] + 7, y: y(p.probability) - 6 }, pct(p.probability)));
  });
  const note = el("p", { class: "meta" }, pts.length < points.length
    ? "Landmarks without a point: no model registered there, or the patient was not eligible."
    : "Each point uses only the data recorded up to that landmark.");
  const wrap = el("div");
  wrap.append(root, note);
  return wrap;
}

async function submit(ev) {
  ev.preventDefault();
  $("errors").hidden = true;
  let req;
  try { req = buildRequest(); } catch (e) { showErrors("Please correct the input:", [e.message]); return; }
  $("status").textContent = "Calculating…";
  let r;
  try {
    r = await api("/v1/risk", { method: "POST", body: JSON.stringify(req) });
  } catch (e) {
    $("status").textContent = "";
    showErrors("The service could not be reached.", [String(e)]);
    return;
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("status").textContent = "";
    $("results").replaceChildren();
    $("trend-box").hidden = true;
    const detail = Array.isArray(data.detail)
      ? data.detail.map((d) => `${where(d.loc || [])}: ${d.msg}`)
      : [String(data.detail || r.statusText)];
    showErrors(r.status === 422 ? "Please correct the input:" : `Error ${r.status}:`, detail);
    return;
  }
  $("status").textContent = `Scored at ${data.landmark} (request ${data.request_id.slice(0, 8)}). ${data.notice}`;
  $("results").replaceChildren(...data.results.map(renderResult));
  $("trend").replaceChildren(renderTrend(data.trend));
  $("trend-box").hidden = false;
  $("result-title").focus?.();
}

document.addEventListener("DOMContentLoaded", () => {
  $("patient-form").addEventListener("submit", submit);
  $("load-example").addEventListener("click", () => {
    const i = $("example-select").value;
    if (i !== "") fillForm(examples[Number(i)].request);
  });
  $("clear").addEventListener("click", () => { $("patient-form").reset(); $("errors").hidden = true; });
  $("result-title").setAttribute("tabindex", "-1");
  $("token-form").addEventListener("submit", saveToken);
  loadExamples();
  loadModels();
});
