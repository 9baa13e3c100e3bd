// The per-flag dashboard: polls the page's JSON endpoint and redraws charts and tables.
// Chart.js draws; intervals are floating bars [lower, upper] with the estimate as a point.
(function () {
  "use strict";
  const root = document.querySelector(".flag-dashboard");
  if (!root) return;
  const url = root.dataset.url;
  const pollMs = Number(root.dataset.pollSeconds || 15) * 1000;
  const colours = ["#417690", "#e07b39", "#5a9e4b", "#9b59b6", "#c0392b", "#7f8c8d"];
  const charts = {};
  const state = { updates: 0, data: null, charts: charts, errors: [] };
  window.flagsiteDashboard = state;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function pct(x, digits) {
    return x === null || x === undefined ? "—" : (100 * x).toFixed(digits === undefined ? 2 : digits) + "%";
  }
  function num(x, digits) {
    return x === null || x === undefined ? "—" : Number(x).toFixed(digits === undefined ? 1 : digits);
  }
  function interval(i, fmt) {
    if (!i || i.value === null) return "—";
    return fmt(i.value) + " [" + fmt(i.lower) + ", " + fmt(i.upper) + "]";
  }
  function floating(i) {
    if (!i || i.value === null) return null;
    const lo = i.lower === null ? i.value : i.lower;
    const hi = i.upper === null ? i.value : i.upper;
    return [lo, hi];
  }

  // A guardrail's value against its red line, and the metric's flag-on and control values.
  function metricValues(m) {
    const own = m.metric.startsWith("latency") ? (x => num(x, 0) + " ms") : (m.metric.startsWith("custom") ? (x => num(x, 3)) : (x => pct(x, 2)));
    const vs = m.treatment === null || m.treatment === undefined ? "" : " · on " + own(m.treatment) + " vs control " + own(m.control);
    return (m.value === null ? "no value" : num(m.value, 3)) + " (red " + num(m.red, 3) + ")" + vs;
  }
  function evidenceText(e) {
    const ev = e.evidence || {};
    const parts = [];
    if (ev.plan !== undefined) parts.push("plan #" + ev.plan + " check #" + ev.check);
    if (ev.samples) parts.push("users: flag-on " + ev.samples.treatment_users + ", control " + ev.samples.control_users);
    (ev.guardrails || []).forEach(g => parts.push(g.guardrail + " " + g.status + ": " + g.message));
    if (ev.sample_ratio && ev.sample_ratio.mismatch) parts.push("sample-ratio mismatch");
    if (ev.plan === undefined && Object.keys(ev).length) parts.push(JSON.stringify(ev));
    return parts.join(" · ");
  }

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
    } else {
      config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
      charts[id] = new Chart(canvas, config);
    }
  }

  function intervalChart(id, variants, key, scale) {
    draw(id, {
      type: "bar",
      data: {
        labels: variants.map(v => v.variant + (v.is_control ? " (control)" : "")),
        datasets: [
          { type: "bar", label: "95% interval", data: variants.map(v => { const f = floating(v[key]); return f ? f.map(x => x * scale) : null; }),
            backgroundColor: variants.map((_, i) => colours[i % colours.length] + "66"), borderColor: variants.map((_, i) => colours[i % colours.length]), borderWidth: 1 },
          { type: "line", label: "estimate", data: variants.map(v => (v[key] && v[key].value !== null) ? v[key].value * scale : null),
            showLine: false, pointRadius: 5, pointBackgroundColor: "#222", borderColor: "#222" },
        ],
      },
      options: { plugins: { legend: { display: false } } },
    });
  }

  function render(data) {
    state.data = data;
    const variants = data.variants;
    const withData = variants.filter(v => v.exposed_users > 0);

    // Status, SRM, guardrail cards.
    const status = document.getElementById("status");
    status.replaceChildren();
    status.append(el("span", data.status.enabled ? "ON" : "OFF", "pill " + (data.status.enabled ? "pill-on" : "pill-off")));
    status.append(el("span", " " + data.status.mode + ": " + Object.entries(data.status.percent).map(([v, p]) => v + " " + num(p, 2) + "%").join(" · ")));
    status.append(el("div", "version " + data.status.version + (data.window ? " · since " + data.window.start.slice(0, 16).replace("T", " ") : "")));
    if (data.rollout) {
      const r = data.rollout;
      const line = el("div", null, "rollout-status");
      const link = el("a", r.name);
      link.href = r.url;
      line.append(el("span", r.label, "pill pill-stage rollout-" + r.status), " ", link);
      status.append(line);
      if (r.status_reason) status.append(el("div", r.status_display + ": " + r.status_reason));
      status.append(el("div", "next decision: " + r.next_decision));
    }
    const srm = document.getElementById("srm");
    srm.replaceChildren();
    if (data.sample_ratio) {
      const s = data.sample_ratio;
      const label = s.status !== "ok" ? "not enough data" : (s.mismatch ? "MISMATCH" : "ok");
      srm.append(el("span", label, "pill verdict-" + (s.status !== "ok" ? "insufficient_data" : (s.mismatch ? "red" : "green"))));
      srm.append(el("div", "p = " + num(s.p_value, 4) + " (sequential " + num(s.sequential_p_value, 4) + ")"));
      srm.append(el("div", Object.entries(s.observed).map(([v, n]) => v + ": " + n + " (expected " + num(s.expected[v], 0) + ")").join(" · ")));
    } else {
      srm.append(el("span", "not checked", "pill verdict-insufficient_data"));
      srm.append(el("div", data.sample_ratio_note));
    }
    // Which units the check counted: those exposed in the current stage, not since the first
    // exposure (a healthy rollout's earlier stages were served at other weights).
    if (data.sample_ratio_window) srm.append(el("div", data.sample_ratio_window.label, "srm-window"));
    const guard = document.getElementById("guardrail");
    guard.replaceChildren();
    guard.append(el("span", data.guardrail.verdict.replace("_", " "), "pill verdict-" + data.guardrail.verdict));
    guard.append(el("div", data.guardrail.reasons.join("; ") + " (" + data.guardrail.source + ")"));
    data.guardrail.metrics.forEach(m => {
      const line = el("div", null, "guardrail-metric");
      line.append(el("span", m.status.replace("_", " "), "pill verdict-" + m.status), " " + m.guardrail + ": " + metricValues(m));
      guard.append(line);
    });

    // Exposures over time.
    draw("chart-exposures", {
      type: "line",
      data: {
        labels: data.exposures.labels.map(l => l.slice(5, 13).replace("T", " ") + "h"),
        datasets: Object.entries(data.exposures.series).map(([variant, values], i) => ({
          label: variant, data: values, borderColor: colours[i % colours.length], backgroundColor: colours[i % colours.length], pointRadius: 0, tension: 0.2,
        })),
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "users (cumulative)" } } } },
    });
    intervalChart("chart-error_rate", withData, "error_rate", 100);
    intervalChart("chart-conversion_rate", withData, "conversion_rate", 100);
    intervalChart("chart-p95_latency_ms", withData, "p95_latency_ms", 1);

    // Differences against control: percentage points for rates, percent for ratios.
    const diffs = data.comparisons.filter(c => c.status === "ok");
    draw("chart-differences", {
      type: "bar",
      data: {
        labels: diffs.map(c => c.variant + " · " + c.metric + (c.scale === "absolute" ? " (pp)" : " (%)")),
        datasets: [
          { type: "bar", label: "95% interval", data: diffs.map(c => [100 * c.ci_lower, 100 * c.ci_upper]),
            backgroundColor: diffs.map(c => c.significant ? "#e07b3999" : "#41769066") },
          { type: "line", label: "difference", data: diffs.map(c => 100 * c.difference), showLine: false, pointRadius: 5,
            pointBackgroundColor: "#222", borderColor: "#222" },
        ],
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } } },
    });

    // Custom metrics.
    const customModule = document.getElementById("custom-module");
    customModule.hidden = data.custom_metrics.length === 0;
    const customLabels = [], customBars = [], customPoints = [];
    data.custom_metrics.forEach(name => withData.forEach(v => {
      customLabels.push(name + " · " + v.variant);
      customBars.push(floating(v.custom[name]));
      customPoints.push(v.custom[name].value);
    }));
    if (data.custom_metrics.length) {
      draw("chart-custom", {
        type: "bar",
        data: { labels: customLabels, datasets: [
          { type: "bar", label: "95% interval", data: customBars, backgroundColor: "#5a9e4b66" },
          { type: "line", label: "per user", data: customPoints, showLine: false, pointRadius: 5, pointBackgroundColor: "#222" },
        ] },
        options: { plugins: { legend: { display: false } } },
      });
    }

    // Per-variant table.
    const table = document.getElementById("variants");
    const head = el("tr");
    ["Variant", "Exposed users", "Error rate", "Conversion", "p95 latency (ms)"].concat(data.custom_metrics.map(n => n + " / user"))
      .forEach(h => head.append(el("th", h)));
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    body.replaceChildren();
    variants.forEach(v => {
      const tr = el("tr");
      tr.dataset.variant = v.variant;
      tr.append(el("td", v.variant + (v.is_control ? " (control)" : "")));
      tr.append(el("td", v.exposed_users, "num"));
      tr.append(el("td", interval(v.error_rate, x => pct(x, 2)), "num"));
      tr.append(el("td", interval(v.conversion_rate, x => pct(x, 2)), "num"));
      tr.append(el("td", interval(v.p95_latency_ms, x => num(x, 0)), "num"));
      data.custom_metrics.forEach(n => tr.append(el("td", interval(v.custom[n], x => num(x, 3)), "num")));
      body.append(tr);
    });
    diffs.concat(data.comparisons.filter(c => c.status !== "ok")).forEach(c => {
      const tr = el("tr");
      tr.append(el("td", c.variant + " vs " + data.control + ": " + c.metric));
      const text = c.status !== "ok" ? c.message :
        (c.scale === "absolute" ? num(100 * c.difference, 2) + " pp [" + num(100 * c.ci_lower, 2) + ", " + num(100 * c.ci_upper, 2) + "]"
                                : pct(c.difference, 1) + " [" + pct(c.ci_lower, 1) + ", " + pct(c.ci_upper, 1) + "]")
        + (c.p_value !== null ? " · p = " + num(c.p_value, 4) : "") + (c.significant ? " · significant" : "");
      const cell = el("td", text);
      cell.colSpan = 4 + data.custom_metrics.length;
      tr.append(cell);
      body.append(tr);
    });

    // Timeline.
    const timeline = document.getElementById("timeline").tBodies[0];
    timeline.replaceChildren();
    data.timeline.forEach(e => {
      const tr = el("tr", null, "timeline-" + e.kind);
      tr.append(el("td", e.at.slice(0, 19).replace("T", " ")));
      tr.append(el("td", e.title));
      tr.append(el("td", e.actor));
      const why = el("td", e.detail || "");
      const evidence = evidenceText(e);
      if (evidence) why.append(el("div", evidence, "evidence"));
      tr.append(why);
      timeline.append(tr);
    });
    const note = document.getElementById("timeline-note");
    const checks = data.timeline_checks;
    note.hidden = checks.shown >= checks.total;
    note.textContent = "Showing " + checks.shown + " of " + checks.total + " rollout records (every stage change, rollback and action, and the latest holds)" + (data.rollout ? "; all of them are on the plan's page." : ".");
    if (!data.timeline.length) timeline.append(el("tr")).append(el("td", "No changes recorded."));

    state.updates += 1;
    document.getElementById("last-update").textContent =
      "last update " + new Date().toISOString().slice(11, 19) + " UTC (every " + pollMs / 1000 + " s)";
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
    } catch (error) {
      state.errors.push(String(error));
      document.getElementById("last-update").textContent = "update failed (" + error + "); retrying";
    } finally {
      window.setTimeout(poll, pollMs);
    }
  }
  poll();
})();
