/* crs-risk clinician page: form → POST /v1/risk → risk, reasons (waterfall), trend, models.
   Plain JavaScript, no external assets: the page works offline from the service alone. */
"use strict";

const PATIENT_FIELDS = ["age_years", "weight_kg", "sex", "product", "marrow_blasts_pct",
  "car_t_dose", "lymphodepletion", "prior_hsct", "prior_blinatumomab", "prior_inotuzumab",
  "extramedullary_disease"];
const NUMERIC = new Set(["age_years", "weight_kg", "marrow_blasts_pct", "car_t_dose"]);
const BOOLEAN = new Set(["prior_hsct", "prior_blinatumomab", "prior_inotuzumab",
  "extramedullary_disease"]);
const TASK_TITLES = {
  severe_crs: "Severe CRS (ASTCT grade ≥3) after the landmark",
  toci_refractory: "Tocilizumab-refractory CRS (scored at the first dose)",
};
const SVG_NS = "http://www.w3.org/2000/svg";
let examples = [];

const $ = (id) => document.getElementById(id);

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  const token = $("f-token").value.trim();
  if (token) h.Authorization = "Bearer " + token;
  return h;
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
    const r = await fetch("/v1/examples", { headers: headers(false) });
    if (!r.ok) return;
    examples = (await r.json()).examples;
    const sel = $("example-select");
    examples.forEach((ex, i) => sel.appendChild(el("option", { value: String(i) }, ex.title)));
  } catch (e) { /* the form still works without examples */ }
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models", { headers: headers(false) });
    if (!r.ok) return;
    const data = await r.json();
    const table = el("table");
    const head = el("tr");
    ["Model", "Version", "Landmark", "AUROC (95% CI)", "Calibration slope", "n / events"]
      .forEach((h) => head.appendChild(el("th", { scope: "col" }, h)));
    table.appendChild(head);
    for (const m of data.models) {
      const a = m.metrics.auroc || {};
      const s = m.metrics.calibration_slope || {};
      const row = el("tr");
      [m.name, "v" + m.version, m.landmark,
        a.value == null ? "–" : `${a.value.toFixed(2)} (${fmt(a.ci_low)}–${fmt(a.ci_high)})`,
        s.value == null ? "–" : s.value.toFixed(2),
        `${m.n_patients ?? "–"} / ${m.n_events ?? "–"}`]
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

function waterfall(result) {
  const cs = result.contributions.slice();
  if (result.other_contribution) {
    cs.push({ label: "All other variables", value_text: "", contribution: result.other_contribution,
      text: `All other variables together → ${result.other_contribution >= 0 ? "+" : "−"}${Math.abs(result.other_contribution).toFixed(2)} log-odds` });
  }
  if (!cs.length) return el("p", { class: "meta" }, "No explanation available for this model.");
  const rowH = 26, labelW = 330, barW = 260, w = labelW + barW + 70;
  const h = rowH * (cs.length + 2) + 10;
  const base = result.base_value ?? 0;
  let cum = base;
  const steps = cs.map((c) => { const s = { c, from: cum, to: cum + c.contribution }; cum += c.contribution; return s; });
  const xs = [base, cum, ...steps.flatMap((s) => [s.from, s.to])];
  const lo = Math.min(...xs), hi = Math.max(...xs), span = hi - lo || 1;
  const x = (v) => labelW + ((v - lo) / span) * barW;
  const root = svg("svg", { width: w, height: h, role: "img", viewBox: `0 0 ${w} ${h}`,
    "aria-label": "Waterfall of the reasons: contributions to the log-odds of risk" });
  root.appendChild(svg("text", { x: 4, y: 18 }, `Average patient (log-odds ${base.toFixed(2)})`));
  root.appendChild(svg("line", { x1: x(base), x2: x(base), y1: 4, y2: h - 4, stroke: "#999", "stroke-dasharray": "3 3" }));
  steps.forEach((s, i) => {
    const y = rowH * (i + 1) + 4;
    const up = s.c.contribution >= 0;
    const label = s.c.value_text ? `${s.c.label}: ${s.c.value_text}` : s.c.label;
    root.appendChild(svg("text", { x: 4, y: y + 16 }, label.length > 48 ? label.slice(0, 47) + "…" : label));
    root.appendChild(svg("rect", { x: Math.min(x(s.from), x(s.to)), y: y + 4,
      width: Math.max(2, Math.abs(x(s.to) - x(s.from))), height: rowH - 8,
      class: up ? "bar-up" : "bar-down" }));
    root.appendChild(svg("text", { x: Math.max(x(s.from), x(s.to)) + 4, y: y + 16 },
      (up ? "+" : "−") + Math.abs(s.c.contribution).toFixed(2)));
  });
  root.appendChild(svg("text", { x: 4, y: rowH * (cs.length + 1) + 20 },
    `This patient (log-odds ${cum.toFixed(2)}; calibrated risk ${pct(result.probability)})`));
  const list = el("ul", { class: "reasons" });
  cs.forEach((c) => list.appendChild(el("li", {}, c.text || `${c.label}: ${c.value_text} → ${c.contribution >= 0 ? "+" : ""}${c.contribution.toFixed(2)} log-odds`)));
  const wrap = el("div");
  wrap.append(root, list);
  return wrap;
}

function bandClass(b) { return "band band-" + String(b || "").replace(/\s+/g, "-"); }

function renderResult(r) {
  const box = el("article", { class: "task", "aria-label": TASK_TITLES[r.task] });
  box.appendChild(el("h3", {}, TASK_TITLES[r.task] + (r.task === "severe_crs" ? ` — ${r.landmark}` : "")));
  if (!r.eligible) {
    box.appendChild(el("p", {}, "Not scored: " + (r.reason || "not eligible")));
  } else {
    const line = el("p");
    line.append(el("span", { class: "risk", "data-testid": "risk-" + r.task }, pct(r.probability)),
      el("span", { class: bandClass(r.band) }, (r.band || "") + " risk"));
    box.appendChild(line);
    const u = r.uncertainty;
    if (u && u.n) {
      box.appendChild(el("p", {}, `Uncertainty: in cross-validation, ${u.events} of ${u.n} patients ` +
        `in this band had the outcome (${pct(u.observed)}, 95% CI ${pct(u.ci_low)}–${pct(u.ci_high)}). ` +
        `Bands: ${r.thresholds.map(pct).join(" / ")}.`));
    }
    box.appendChild(el("h4", {}, "Reasons"));
    box.appendChild(waterfall(r));
  }
  box.appendChild(el("p", { class: "meta" }, r.model ? `Model ${r.model} v${r.version} · landmark ${r.landmark}` : "No model"));
  const warnings = r.warnings.filter((w) => w.code !== "not_eligible");
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
    r = await fetch("/v1/risk", { method: "POST", headers: headers(true), body: JSON.stringify(req) });
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
  loadExamples();
  loadModels();
});
