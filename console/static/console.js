// The console's only script: the editor's timeline follows the form, the
// kind menu shows the parts of the form its kind has, the recurrence menu
// fills in its rule, and a live view follows its occurrence (server-sent
// events, or polling) until it is done. Pages work without it.
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
    const done = function () {
      const inner = live.querySelector("[data-done]");
      return inner && inner.dataset.done === "true";
    };
    const poll = function () {
      if (done()) { return; }
      fetch(live.dataset.src, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
        .then(function (res) { return res.text(); })
        .then(function (html) { live.innerHTML = html; setTimeout(poll, 1000); })
        .catch(function () { setTimeout(poll, 3000); });
    };
    // Server-sent events where the browser has them and the server takes
    // one more stream; polling every second otherwise, or once a stream
    // ends before its occurrence is done.
    if (done()) {
      // nothing to follow
    } else if (window.EventSource && live.dataset.stream) {
      const es = new EventSource(live.dataset.stream);
      live.dataset.via = "stream";
      es.addEventListener("live", function (e) { live.innerHTML = e.data; });
      es.addEventListener("done", function () { es.close(); });
      es.addEventListener("error", function () { es.close(); live.dataset.via = "poll"; setTimeout(poll, 1000); });
    } else {
      live.dataset.via = "poll";
      setTimeout(poll, 1000);
    }
  }
})();
