// Draws a row editor over each textarea with data-targeting and keeps its JSON in sync.
// The textarea stays the value posted, so the server (the engine's validator) decides.
(function () {
  "use strict";
  var BUCKETS = 100000;
  // Operators whose values are numbers; string operators keep "007" as typed.
  var NUMBER_OPS = ["lt", "lte", "gt", "gte"];
  var SCALAR_OPS = ["equals", "not_equals", "in", "not_in"];
  var NO_VALUE_OPS = ["exists", "not_exists"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function select(options, value, cls) {
    var s = el("select", cls ? { "class": cls } : {});
    options.forEach(function (o) {
      var opt = el("option", { value: o, text: o });
      if (o === value) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }
  function isNumeric(v) { return /^-?\d+(\.\d+)?$/.test(v); }
  // A regex may contain commas ("a{1,3}"), so a matches condition takes one pattern per row.
  function parseValues(text, operator) {
    if (operator === "matches") { return text.trim() ? [text.trim()] : []; }
    var parts = text.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
    if (NUMBER_OPS.indexOf(operator) >= 0 || SCALAR_OPS.indexOf(operator) >= 0) {
      return parts.map(function (v) { return isNumeric(v) ? Number(v) : v; });
    }
    return parts;
  }
  function showValues(values, operator) {
    values = values || [];
    if (operator === "matches" && values.length > 1) {
      return values.map(function (p) { return "(?:" + p + ")"; }).join("|");
    }
    return values.join(", ");
  }
  function percent(weight) { return Math.round(weight) / 1000; }

  function serveEditor(serve, variants, onChange) {
    serve = serve || { variant: variants[0] };
    var box = el("div", { "class": "flags-serve" });
    var mode = select(["variant", "rollout"], serve.rollout ? "rollout" : "variant", "flags-mode");
    function draw() {
      box.querySelectorAll(".flags-serve-body").forEach(function (n) { n.remove(); });
      var body = el("div", { "class": "flags-serve-body flags-row" });
      box.appendChild(body);
      if (mode.value === "variant") {
        var v = select(variants, serve.variant, "flags-variant");
        v.addEventListener("change", function () { serve = { variant: v.value }; onChange(serve); });
        body.appendChild(el("span", { text: "serve" }));
        body.appendChild(v);
        serve = { variant: v.value };
        onChange(serve);
        return;
      }
      var rollout = serve.rollout || { variants: variants.map(function (name, i) {
        return { variant: name, weight: i === 0 ? BUCKETS : 0 }; }) };
      var by = el("input", { type: "text", "class": "flags-bucket-by",
        placeholder: "bucket by (default targetingKey)", value: rollout.bucketBy || "" });
      body.appendChild(el("span", { text: "split by" }));
      body.appendChild(by);
      var inputs = variants.map(function (name) {
        var part = (rollout.variants || []).filter(function (p) { return p.variant === name; })[0];
        var pct = el("input", { type: "number", step: "0.001", min: "0", max: "100",
          "class": "flags-weight", "data-variant": name, value: part ? percent(part.weight) : 0 });
        body.appendChild(el("label", {}, [pct, document.createTextNode(" % " + name)]));
        return [name, pct];
      });
      var total = el("span", { "class": "flags-total" });
      body.appendChild(total);
      // What a context without the bucket-by attribute gets; kept from the saved rollout.
      var fallback = select([""].concat(variants), rollout.fallbackVariant || "", "flags-fallback");
      fallback.options[0].textContent = "an error (caller's default)";
      body.appendChild(el("label", {}, [document.createTextNode("without it: "), fallback]));
      var sync = function () {
        var r = { variants: inputs.map(function (p) {
          return { variant: p[0], weight: Math.round(Number(p[1].value || 0) * 1000) }; }) };
        if (by.value.trim()) { r.bucketBy = by.value.trim(); }
        if (fallback.value) { r.fallbackVariant = fallback.value; }
        var sum = r.variants.reduce(function (acc, p) { return acc + p.weight; }, 0);
        total.textContent = "total " + percent(sum) + "%" +
          (sum !== BUCKETS ? ": the percentages must add up to 100%" : "");
        total.classList.toggle("flags-invalid", sum !== BUCKETS);
        serve = { rollout: r };
        onChange(serve);
      };
      by.addEventListener("input", sync);
      fallback.addEventListener("change", sync);
      inputs.forEach(function (p, i) {
        p[1].addEventListener("input", function () {
          // With two variants the other one takes the rest, so the split always sums to 100%.
          if (inputs.length === 2) {
            var rest = BUCKETS - Math.round(Number(p[1].value || 0) * 1000);
            inputs[1 - i][1].value = percent(Math.max(0, rest));
          }
          sync();
        });
      });
      sync();
    }
    mode.addEventListener("change", draw);
    box.appendChild(el("div", { "class": "flags-row" }, [el("span", { text: "mode" }), mode]));
    draw();
    return box;
  }

  function conditionRow(cond, operators, onChange, onRemove) {
    var attr = el("input", { type: "text", "class": "flags-attribute", placeholder: "attribute",
      value: cond.attribute || "" });
    var op = select(operators, cond.operator || "in", "flags-operator");
    var values = el("input", { type: "text", "class": "flags-values",
      placeholder: "values, comma separated", value: showValues(cond.values, cond.operator) });
    var negate = el("input", { type: "checkbox", "class": "flags-negate" });
    negate.checked = !!cond.negate;
    var remove = el("button", { type: "button", text: "remove condition" });
    function placeholder() {
      values.placeholder = op.value === "matches" ? "one regular expression"
        : /segment/.test(op.value) ? "segment keys, comma separated" : "values, comma separated";
      values.disabled = NO_VALUE_OPS.indexOf(op.value) >= 0;
    }
    function sync() {
      placeholder();
      var c = { operator: op.value };
      if (attr.value.trim()) { c.attribute = attr.value.trim(); }
      if (NO_VALUE_OPS.indexOf(op.value) < 0) { c.values = parseValues(values.value, op.value); }
      if (negate.checked) { c.negate = true; }
      if (cond.caseInsensitive) { c.caseInsensitive = true; }
      onChange(c);
    }
    placeholder();
    [attr, values].forEach(function (n) { n.addEventListener("input", sync); });
    [op, negate].forEach(function (n) { n.addEventListener("change", sync); });
    remove.addEventListener("click", onRemove);
    return el("div", { "class": "flags-row flags-condition" },
      [attr, op, values, el("label", { title: "negate the condition" }, [negate, document.createTextNode(" not")]), remove]);
  }

  // Marks the rows the server's errors point at (rules[i].conditions[j]...).
  function markErrors(textarea, root) {
    var list = document.getElementById(textarea.id + "_error");
    if (!list) { return; }
    list.querySelectorAll("li").forEach(function (li) {
      var m = /^(?:rules)?\[(\d+)\](?:\.conditions\[(\d+)\])?/.exec(li.textContent.trim());
      if (!m) { return; }
      var rule = root.querySelectorAll(".flags-rule")[Number(m[1])];
      var target = rule && m[2] !== undefined ? rule.querySelectorAll(".flags-condition")[Number(m[2])] : rule;
      if (target) { target.classList.add("flags-invalid"); target.title = li.textContent; }
    });
  }

  function build(textarea) {
    var kind = textarea.dataset.targeting;
    var variants = JSON.parse(textarea.dataset.variants || "[]");
    var operators = JSON.parse(textarea.dataset.operators || "[]");
    var data;
    // Text that is not JSON (or not the right shape) stays in the plain textarea to be fixed.
    try { data = JSON.parse(textarea.value || (kind === "serve" ? "{}" : "[]")); } catch (e) { return; }
    if (kind === "serve" ? (data === null || typeof data !== "object" || Array.isArray(data)) : !Array.isArray(data)) {
      return;
    }
    var root = el("div", { "class": "flags-editor", "data-field": textarea.name });
    textarea.style.display = "none";
    textarea.parentNode.insertBefore(root, textarea);
    function write() { textarea.value = JSON.stringify(data, null, 2); }
    if (kind === "serve") {
      if (!data.variant && !data.rollout) { data = { variant: variants[0] }; }
      root.appendChild(serveEditor(data, variants, function (s) { data = s; write(); }));
      return;
    }
    function draw() {
      root.innerHTML = "";
      data.forEach(function (rule, i) {
        var box = el("div", { "class": "flags-rule" });
        if (!rule.id) { rule.id = "rule-" + (i + 1); }
        var id = el("input", { type: "text", "class": "flags-rule-id", value: rule.id });
        id.addEventListener("input", function () { rule.id = id.value.trim(); write(); });
        var up = el("button", { type: "button", text: "↑", title: "move up" });
        up.addEventListener("click", function () {
          if (i > 0) { data.splice(i - 1, 0, data.splice(i, 1)[0]); write(); draw(); } });
        var del = el("button", { type: "button", text: "delete rule" });
        del.addEventListener("click", function () { data.splice(i, 1); write(); draw(); });
        box.appendChild(el("div", { "class": "flags-row" },
          [el("span", { "class": "flags-label", text: "Rule " + (i + 1) + " (rules[" + i + "]) id" }), id, up, del]));
        rule.conditions = rule.conditions || [];
        if (!rule.conditions.length) {
          box.appendChild(el("div", { "class": "flags-row flags-hint", text: "no conditions: matches everyone" }));
        }
        rule.conditions.forEach(function (cond, j) {
          box.appendChild(conditionRow(cond, operators,
            function (c) { rule.conditions[j] = c; write(); },
            function () { rule.conditions.splice(j, 1); write(); draw(); }));
        });
        var add = el("button", { type: "button", text: "add condition" });
        add.addEventListener("click", function () {
          rule.conditions.push({ attribute: "", operator: "in", values: [] }); write(); draw(); });
        box.appendChild(add);
        if (kind === "rules") {
          box.appendChild(serveEditor(rule.serve, variants, function (s) { rule.serve = s; write(); }));
        }
        root.appendChild(box);
      });
      var addRule = el("button", { type: "button", text: "add rule" });
      addRule.addEventListener("click", function () {
        var rule = { id: "rule-" + (data.length + 1), conditions: [] };
        if (kind === "rules") { rule.serve = { variant: variants[0] }; }
        data.push(rule); write(); draw();
      });
      root.appendChild(addRule);
    }
    draw();
    write();
    markErrors(textarea, root);
  }
  function start() { document.querySelectorAll("textarea[data-targeting]").forEach(build); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
