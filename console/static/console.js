// The console's only script: the editor's timeline follows the form, the
// kind menu shows the parts of the form its kind has, the recurrence menu
// fills in its rule, and a live view
// refreshes itself until its occurrence is done. Pages work without it.
"use strict";
(function () {
  const form = document.getElementById("editor");
  const timeline = document.getElementById("timeline");
  if (form && timeline) {
    const kind = document.getElementById("kind");
    const showParts = function () {
      const opt = kind.options[kind.selectedIndex];
      const parts = (opt.dataset.parts || "").split(" ");
      form.querySelectorAll("fieldset[data-part]").forEach(function (fs) {
        fs.hidden = parts.indexOf(fs.dataset.part) < 0;
      });
    };
    let timer = null, seq = 0;
    const refresh = function () {
      const mine = ++seq;
      fetch(timeline.dataset.src, { method: "POST", body: new FormData(form), headers: { "X-Fragment": "1" }, credentials: "same-origin" })
        .then(function (res) { return res.text(); })
        .then(function (html) { if (mine === seq) { timeline.innerHTML = html; timeline.dataset.seq = String(mine); } });
    };
    kind.addEventListener("change", showParts);
    // The recurrence menu writes its rule into the rule's field, and the
    // field shows its preset in the menu (or "custom").
    const preset = document.getElementById("recurrence_preset");
    const rule = document.getElementById("recurrence");
    if (preset && rule) {
      preset.addEventListener("change", function () { if (preset.value !== "custom") { rule.value = preset.value; } });
      rule.addEventListener("input", function () {
        const v = rule.value.trim();
        preset.value = Array.prototype.some.call(preset.options, function (o) { return o.value === v; }) ? v : "custom";
      });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 250); });
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  }
  const live = document.getElementById("live");
  if (live) {
    const poll = function () {
      const inner = live.querySelector("[data-done]");
      if (inner && inner.dataset.done === "true") { return; }
      fetch(live.dataset.src, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
        .then(function (res) { return res.text(); })
        .then(function (html) { live.innerHTML = html; setTimeout(poll, 1000); })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 1000);
  }
})();
