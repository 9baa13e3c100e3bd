// Draws a row editor over each textarea with data-targeting and keeps its JSON in sync.
(function () {
  "use strict";
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function select(options, value) {
    var s = el("select");
    options.forEach(function (o) {
      var opt = el("option", { value: o, text: o });
      if (o === value) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }
  function parseValues(text) {
    return text.split(",").map(function (v) { return v.trim(); }).filter(Boolean).map(function (v) {
      return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    });
  }
  function serveEditor(serve, variants, onChange) {
    serve = serve || { variant: variants[0] };
    var box = el("div", { "class": "flags-serve" });
    var mode = select(["variant", "rollout"], serve.rollout ? "rollout" : "variant");
    function draw() {
      box.querySelectorAll(".flags-serve-body").forEach(function (n) { n.remove(); });
      var body = el("div", { "class": "flags-serve-body flags-row" });
      if (mode.value === "variant") {
        var v = select(variants, serve.variant);
        v.addEventListener("change", function () { serve = { variant: v.value }; onChange(serve); });
        body.appendChild(el("span", { text: "serve" }));
        body.appendChild(v);
        serve = { variant: v.value };
      } else {
        var rollout = serve.rollout || { variants: variants.map(function (name, i) {
          return { variant: name, weight: i === 0 ? 100000 : 0 }; }) };
        var by = el("input", { type: "text", placeholder: "bucket by (default targetingKey)",
          value: rollout.bucketBy || "" });
        body.appendChild(el("span", { text: "split by" }));
        body.appendChild(by);
        var inputs = variants.map(function (name) {
          var part = (rollout.variants || []).filter(function (p) { return p.variant === name; })[0];
          var pct = el("input", { type: "number", step: "0.001", min: "0", max: "100",
            "class": "flags-weight", value: part ? part.weight / 1000 : 0 });
          body.appendChild(el("span", { text: name + " %" }));
          body.appendChild(pct);
          return [name, pct];
        });
        var sync = function () {
          var r = { variants: inputs.map(function (p) {
            return { variant: p[0], weight: Math.round(Number(p[1].value || 0) * 1000) }; }) };
          if (by.value.trim()) { r.bucketBy = by.value.trim(); }
          serve = { rollout: r };
          onChange(serve);
        };
        by.addEventListener("input", sync);
        inputs.forEach(function (p) { p[1].addEventListener("input", sync); });
        sync();
        return box.appendChild(body);
      }
      box.appendChild(body);
      onChange(serve);
    }
    mode.addEventListener("change", draw);
    box.appendChild(el("div", { "class": "flags-row" }, [el("span", { text: "mode" }), mode]));
    draw();
    return box;
  }
  function conditionRow(cond, operators, onChange, onRemove) {
    var attr = el("input", { type: "text", placeholder: "attribute", value: cond.attribute || "" });
    var op = select(operators, cond.operator || "in");
    var values = el("input", { type: "text", "class": "flags-values", placeholder: "values, comma separated",
      value: (cond.values || []).join(", ") });
    var negate = el("input", { type: "checkbox" });
    negate.checked = !!cond.negate;
    var remove = el("button", { type: "button", text: "remove" });
    function sync() {
      var c = { operator: op.value };
      if (attr.value.trim()) { c.attribute = attr.value.trim(); }
      var vals = parseValues(values.value);
      if (vals.length || !/exists/.test(op.value)) { c.values = vals; }
      if (negate.checked) { c.negate = true; }
      onChange(c);
    }
    [attr, values].forEach(function (n) { n.addEventListener("input", sync); });
    [op, negate].forEach(function (n) { n.addEventListener("change", sync); });
    remove.addEventListener("click", onRemove);
    return el("div", { "class": "flags-row" },
      [attr, op, values, el("label", { text: "not" }), negate, remove]);
  }
  function build(textarea) {
    var kind = textarea.dataset.targeting;
    var variants = JSON.parse(textarea.dataset.variants || "[]");
    var operators = JSON.parse(textarea.dataset.operators || "[]");
    var data;
    try { data = JSON.parse(textarea.value || (kind === "serve" ? "{}" : "[]")); } catch (e) { return; }
    var root = el("div", { "class": "flags-editor" });
    textarea.style.display = "none";
    textarea.parentNode.insertBefore(root, textarea);
    function write() { textarea.value = JSON.stringify(data, null, 2); }
    if (kind === "serve") {
      root.appendChild(serveEditor(data, variants, function (s) { data = s; write(); }));
      return;
    }
    function draw() {
      root.innerHTML = "";
      data.forEach(function (rule, i) {
        var box = el("div", { "class": "flags-rule" });
        var id = el("input", { type: "text", value: rule.id || ("rule-" + (i + 1)) });
        id.addEventListener("input", function () { rule.id = id.value; write(); });
        var up = el("button", { type: "button", text: "↑" });
        up.addEventListener("click", function () { if (i > 0) { data.splice(i - 1, 0, data.splice(i, 1)[0]); write(); draw(); } });
        var del = el("button", { type: "button", text: "delete rule" });
        del.addEventListener("click", function () { data.splice(i, 1); write(); draw(); });
        box.appendChild(el("div", { "class": "flags-row" },
          [el("span", { "class": "flags-label", text: "Rule " + (i + 1) + " (rules[" + i + "]) id" }), id, up, del]));
        rule.conditions = rule.conditions || [];
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
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-targeting]").forEach(build);
  });
})();
