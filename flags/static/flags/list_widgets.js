// Row editors for a flag's variants (name -> value) and a flag state's prerequisites
// ([{flag, variants}]), drawn over their textareas (data-editor). The textarea stays the value
// posted and the server validates; rows the browser can already tell are wrong are marked.
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
  function button(text, onClick) {
    var b = el("button", { type: "button", text: text });
    b.addEventListener("click", onClick);
    return b;
  }
  function mark(row, problem) {
    row.classList.toggle("flags-invalid", Boolean(problem));
    var hint = row.querySelector(".flags-row-problem");
    hint.textContent = problem || "";
  }

  // Value of one variant as the flag's value type reads it; {problem} when it cannot.
  function parseValue(text, type) {
    if (type === "boolean") { return text === "true" ? true : text === "false" ? false : { problem: "choose true or false" }; }
    if (type === "number") {
      var n = Number(text);
      return text.trim() !== "" && isFinite(n) ? n : { problem: "must be a number" };
    }
    if (type === "json") {
      try { return JSON.parse(text); } catch (e) { return { problem: "not valid JSON" }; }
    }
    return text;
  }
  function showValue(value, type) {
    if (type === "json") { return JSON.stringify(value); }
    return value === undefined || value === null ? "" : String(value);
  }

  function variantsEditor(textarea, root) {
    var typeField = document.getElementById("id_value_type");
    var type = function () { return typeField ? typeField.value : (textarea.dataset.valueType || "boolean"); };
    var rows = [];
    try {
      var data = JSON.parse(textarea.value || "{}");
      if (data === null || typeof data !== "object" || Array.isArray(data)) { return false; }
      Object.keys(data).forEach(function (k) { rows.push([k, showValue(data[k], type())]); });
    } catch (e) { return false; }
    function write() {
      var out = {}, seen = {};
      root.querySelectorAll(".flags-variant-row").forEach(function (row, i) {
        var name = rows[i][0].trim(), parsed = parseValue(rows[i][1], type());
        var problem = !name ? "give the variant a name" : seen[name] ? "this name is used twice"
          : parsed && parsed.problem ? parsed.problem : "";
        seen[name] = true;
        mark(row, problem);
        if (name && !(parsed && parsed.problem)) { out[name] = parsed; }
      });
      textarea.value = JSON.stringify(out, null, 2);
    }
    function valueInput(i) {
      var input;
      if (type() === "boolean") {
        input = el("select", { "class": "flags-variant-value" });
        ["true", "false"].forEach(function (v) {
          var o = el("option", { value: v, text: v });
          if (rows[i][1] === v) { o.selected = true; }
          input.appendChild(o);
        });
        rows[i][1] = input.value;
      } else {
        input = el("input", { type: type() === "number" ? "number" : "text", "class": "flags-variant-value",
          value: rows[i][1], placeholder: type() === "json" ? '{"limit": 10}' : "value" });
      }
      input.addEventListener(input.tagName === "SELECT" ? "change" : "input", function () { rows[i][1] = input.value; write(); });
      return input;
    }
    function draw() {
      root.innerHTML = "";
      rows.forEach(function (r, i) {
        var name = el("input", { type: "text", "class": "flags-variant-name", value: r[0], placeholder: "name" });
        name.addEventListener("input", function () { r[0] = name.value; write(); });
        root.appendChild(el("div", { "class": "flags-row flags-variant-row" }, [
          name, el("span", { text: "=" }), valueInput(i),
          button("remove", function () { rows.splice(i, 1); draw(); write(); }),
          el("span", { "class": "flags-row-problem" })]));
      });
      root.appendChild(button("add variant", function () {
        rows.push(["", type() === "boolean" ? "false" : ""]); draw(); write(); }));
    }
    if (typeField) {
      typeField.addEventListener("change", function () { draw(); write(); });
    }
    draw();
    write();
    return true;
  }

  function prerequisitesEditor(textarea, root) {
    var flags = JSON.parse(textarea.dataset.flags || "{}");
    var data;
    try { data = JSON.parse(textarea.value || "[]"); } catch (e) { return false; }
    if (!Array.isArray(data)) { return false; }
    function write() {
      root.querySelectorAll(".flags-prerequisite-row").forEach(function (row, i) {
        var p = data[i];
        mark(row, !p.flag ? "choose a flag" : !p.variants.length ? "tick at least one variant" : "");
      });
      textarea.value = JSON.stringify(data, null, 2);
    }
    function draw() {
      root.innerHTML = "";
      data.forEach(function (p, i) {
        p.variants = p.variants || [];
        var pick = el("select", { "class": "flags-prerequisite-flag" });
        [""].concat(Object.keys(flags)).forEach(function (k) {
          var o = el("option", { value: k, text: k || "choose a flag" });
          if (k === p.flag) { o.selected = true; }
          pick.appendChild(o);
        });
        pick.addEventListener("change", function () { p.flag = pick.value; p.variants = []; draw(); write(); });
        var checks = [];
        var boxes = (flags[p.flag] || []).map(function (v) {
          var box = el("input", { type: "checkbox", value: v, "class": "flags-prerequisite-variant" });
          box.checked = p.variants.indexOf(v) >= 0;
          checks.push(box);
          box.addEventListener("change", function () {
            p.variants = checks.filter(function (c) { return c.checked; }).map(function (c) { return c.value; });
            write();
          });
          return el("label", {}, [box, document.createTextNode(" " + v)]);
        });
        root.appendChild(el("div", { "class": "flags-row flags-prerequisite-row" },
          [el("span", { text: "only if" }), pick, el("span", { text: "serves" })].concat(boxes).concat([
            button("remove", function () { data.splice(i, 1); draw(); write(); }),
            el("span", { "class": "flags-row-problem" })])));
      });
      root.appendChild(button("add prerequisite", function () {
        data.push({ flag: "", variants: [] }); draw(); write(); }));
    }
    draw();
    write();
    return true;
  }

  function build(textarea) {
    var root = el("div", { "class": "flags-editor", "data-field": textarea.name });
    var drawn = textarea.dataset.editor === "variants" ? variantsEditor(textarea, root)
      : prerequisitesEditor(textarea, root);
    if (!drawn) { return; } // text that does not parse stays in the textarea to be fixed
    textarea.style.display = "none";
    textarea.parentNode.insertBefore(root, textarea);
  }
  function start() { document.querySelectorAll("textarea[data-editor]").forEach(build); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
