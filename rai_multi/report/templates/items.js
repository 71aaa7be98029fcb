/* rai-multi item explorer: renders and filters the items embedded in #items-data.
   Plain DOM calls only; every value from a run is set with textContent (never as HTML),
   so a model's "<script>" or "onerror=" stays text. No library, no request. */
(function () {
  "use strict";
  var source = document.getElementById("items-data");
  if (!source) { return; }
  var DATA = JSON.parse(source.textContent);
  var PAGE = 100;      // rows rendered at a time ("show more" adds a page)
  var CLIP = 240;      // characters of a long text shown before "show all"
  var CODES = {g: "gained", l: "lost", c: "changed", s: "same"};
  var byKey = {};
  DATA.forEach(function (rec) { byKey[rec.key] = rec; });
  var state = {key: DATA.length ? DATA[0].key : "", lang: "", tier: "", cand: 0, change: "", q: "", shown: PAGE};

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function fmt(x) {
    if (x === null || x === undefined) { return "–"; }
    if (typeof x === "number") { return Number.isInteger(x) ? String(x) : x.toFixed(3); }
    if (typeof x === "boolean") { return x ? "true" : "false"; }
    return String(x);
  }
  function option(rec, item, k) {
    return item.opts && k !== null && k !== undefined && item.opts[k] !== undefined ? "option " + k + ": " + item.opts[k] : fmt(k);
  }

  /* Text clipped to CLIP characters with a button that shows all of it (and back). */
  function longText(text, cls) {
    var wrap = el("div", "long");
    var pre = el("pre", cls || "output");
    text = text === null || text === undefined ? "" : String(text);
    wrap.appendChild(pre);
    if (text.length <= CLIP) { pre.textContent = text; return wrap; }
    var full = false;
    var btn = el("button", "expand");
    btn.type = "button";
    function show() {
      pre.textContent = full ? text : text.slice(0, CLIP) + " …";
      btn.textContent = full ? "show less" : "show all " + text.length + " characters";
    }
    btn.addEventListener("click", function () { full = !full; show(); });
    show();
    wrap.appendChild(btn);
    return wrap;
  }

  function haystack(item) {
    if (item._hay === undefined) {
      var parts = [item.id, item.lang, item.prompt, item.gold];
      (item.opts || []).forEach(function (o) { parts.push(o); });
      Object.keys(item.meta || {}).forEach(function (k) { parts.push(k + "=" + item.meta[k]); });
      item.m.forEach(function (m) {
        if (!m) { return; }
        (m.out || []).forEach(function (o) { parts.push(o); });
        parts.push(fmt(m.ans));
      });
      item._hay = parts.join("\n").toLowerCase();
    }
    return item._hay;
  }

  function matches(item) {
    if (state.lang && item.lang !== state.lang) { return false; }
    if (state.tier && item.tier !== state.tier) { return false; }
    if (state.change) {
      var st = item.st[state.cand] || "";
      if (state.change === "changed") {
        if (!st || st === "s") { return false; }
      } else if (st !== state.change) { return false; }
    }
    return !state.q || haystack(item).indexOf(state.q) >= 0;
  }

  function verdictClass(rec, v) {
    if (v !== 0 && v !== 1 && v !== true && v !== false) { return "num"; }
    var good = rec.direction === "higher" ? !!v : rec.direction === "lower" ? !v : null;
    return good === null ? "num" : (good ? "num right" : "num wrong");
  }

  function outputCell(rec, item, m) {
    var td = el("td", "out");
    if (item.opts && m.ll) {
      var list = el("ol", "options");
      list.start = 0;
      item.opts.forEach(function (text, k) {
        var li = el("li");
        if (m.ans === k) { li.className = "chosen"; }
        var ll = m.ll[k] || [null, null];
        li.appendChild(el("span", "ll", "log-lik " + (typeof ll[0] === "number" ? ll[0].toFixed(3) : "–") + " (" + fmt(ll[1]) + " tok)"));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "opt", text));
        if (item.gi === k) { li.appendChild(el("span", "tag", "gold")); }
        if (m.ans === k) { li.appendChild(el("span", "tag", "chosen")); }
        list.appendChild(li);
      });
      td.appendChild(list);
    }
    (m.out || []).forEach(function (text, k) {
      var block = el("div", "continuation");
      if (m.tox) { block.appendChild(el("span", "tox", "toxicity " + fmt(m.tox[k]))); }
      block.appendChild(longText(text));
      td.appendChild(block);
    });
    if (!m.out && !(item.opts && m.ll)) { td.textContent = "–"; }
    if (m.more) {
      var d = el("details", "more");
      d.appendChild(el("summary", null, "more fields"));
      Object.keys(m.more).forEach(function (k) { d.appendChild(el("div", null, k + ": " + m.more[k])); });
      td.appendChild(d);
    }
    return td;
  }

  function renderRow(rec, item) {
    var tr = el("tr");
    tr.dataset.id = item.id;
    tr.appendChild(el("td", "id", item.id));
    tr.appendChild(el("td", null, item.lang));
    tr.appendChild(el("td", null, item.tier));
    var prompt = el("td", "prompt");
    if (item.prompt) {
      var d = el("details");
      d.appendChild(el("summary", null, "prompt (" + item.prompt.length + " chars)"));
      d.appendChild(longText(item.prompt, "prompt-text"));
      prompt.appendChild(d);
    }
    if (item.meta) {
      var meta = el("details", "meta");
      meta.appendChild(el("summary", null, "fields"));
      Object.keys(item.meta).forEach(function (k) { meta.appendChild(el("div", null, k + ": " + item.meta[k])); });
      prompt.appendChild(meta);
    }
    tr.appendChild(prompt);
    tr.appendChild(el("td", "gold", item.gold));
    item.st.forEach(function (code) {
      tr.appendChild(el("td", "status " + (CODES[code] || "na"), CODES[code] || "–"));
    });
    item.m.forEach(function (m) {
      if (!m) {
        tr.appendChild(el("td", "missing", "not in this run"));
        tr.appendChild(el("td"));
        tr.appendChild(el("td"));
        return;
      }
      tr.appendChild(outputCell(rec, item, m));
      var ans = el("td", "answer", m.ans === undefined ? "–" : option(rec, item, m.ans));
      if (m.how) { ans.appendChild(el("div", "how", m.how)); }
      tr.appendChild(ans);
      tr.appendChild(el("td", verdictClass(rec, m.v), fmt(m.v)));
    });
    return tr;
  }

  function renderHead(rec) {
    var head = $("items-head");
    head.textContent = "";
    var tr = el("tr");
    ["id", "lang", "tier", "prompt", "gold"].forEach(function (h) { tr.appendChild(el("th", null, h)); });
    rec.candidates.forEach(function (c) { tr.appendChild(el("th", null, c + " vs baseline")); });
    rec.models.forEach(function (model) {
      tr.appendChild(el("th", null, model + (model === rec.baseline ? " (baseline)" : "") + ": output"));
      tr.appendChild(el("th", null, "answer (how read)"));
      tr.appendChild(el("th", null, rec.field || "score"));
    });
    head.appendChild(tr);
  }

  function fillSelect(select, values, label) {
    select.textContent = "";
    var all = el("option", null, label);
    all.value = "";
    select.appendChild(all);
    values.forEach(function (v) { var o = el("option", null, v); o.value = v; select.appendChild(o); });
  }

  function setupTask() {
    var rec = byKey[state.key];
    fillSelect($("f-lang"), rec.langs, "all languages");
    fillSelect($("f-tier"), rec.tiers, "all tiers");
    var cand = $("f-cand");
    cand.textContent = "";
    rec.candidates.forEach(function (c, k) { var o = el("option", null, c); o.value = String(k); cand.appendChild(o); });
    cand.disabled = rec.candidates.length < 2;
    var radios = document.querySelectorAll("input[name=change]");
    Array.prototype.forEach.call(radios, function (r) { r.disabled = !rec.candidates.length || (!rec.paired && (r.value === "g" || r.value === "l")); });
    var notes = $("items-notes");
    notes.textContent = "";
    Object.keys(rec.issues).forEach(function (c) {
      notes.appendChild(el("div", "flag", "Items not paired with " + c + " (runs not comparable): " + rec.issues[c]));
    });
    if (!rec.paired && rec.candidates.length) {
      notes.appendChild(el("div", "note", "Per item, " + (rec.field || "the score") + " has no better or worse direction here "
        + "(" + rec.metric + "): items show as changed or same, not gained or lost."));
    }
    if (rec.only) {
      notes.appendChild(el("div", "note", "Gained and lost count only items with " + rec.only[0] + " = " + rec.only[1]
        + ", the rows " + rec.metric + " is computed on."));
    }
    var starts = $("items-starts");
    starts.textContent = "";
    var langs = Object.keys(rec.starts || {}).sort();
    if (langs.length) {
      var box = el("details", "starts");
      box.appendChild(el("summary", null, "The start every prompt of a language shares (few-shot exemplars; "
        + "each row's prompt shows only what follows it): " + langs.join(", ")));
      langs.forEach(function (lang) {
        var d = el("details");
        d.appendChild(el("summary", null, lang + " (" + rec.starts[lang].length + " characters)"));
        d.appendChild(longText(rec.starts[lang], "prompt-text"));
        box.appendChild(d);
      });
      starts.appendChild(box);
    }
    renderHead(rec);
  }

  function syncControls() {
    $("f-task").value = state.key;
    $("f-lang").value = state.lang;
    $("f-tier").value = state.tier;
    $("f-cand").value = String(state.cand);
    $("f-search").value = state.q;
    Array.prototype.forEach.call(document.querySelectorAll("input[name=change]"), function (r) {
      r.checked = r.value === state.change;
    });
  }

  function render() {
    var rec = byKey[state.key];
    var body = $("items-body");
    body.textContent = "";
    var hits = rec.items.filter(matches);
    var frag = document.createDocumentFragment();
    hits.slice(0, state.shown).forEach(function (item) { frag.appendChild(renderRow(rec, item)); });
    body.appendChild(frag);
    var count = $("item-count");
    count.dataset.matching = String(hits.length);
    count.textContent = hits.length + " of " + rec.items.length + " items of " + rec.key + " match"
      + (hits.length > state.shown ? "; showing the first " + state.shown : "");
    var more = $("items-more");
    more.hidden = hits.length <= state.shown;
  }

  function update(changes, keepPage) {
    var taskChanged = changes.key !== undefined && changes.key !== state.key;
    Object.keys(changes).forEach(function (k) { state[k] = changes[k]; });
    if (taskChanged) { setupTask(); }
    if (!keepPage) { state.shown = PAGE; }
    syncControls();
    render();
  }

  function init() {
    if (!DATA.length) { return; }
    var task = $("f-task");
    DATA.forEach(function (rec) { var o = el("option", null, rec.key + " (" + rec.items.length + " items)"); o.value = rec.key; task.appendChild(o); });
    setupTask();
    task.addEventListener("change", function () { update({key: task.value, lang: "", tier: "", cand: 0, change: "", q: ""}); });
    $("f-lang").addEventListener("change", function () { update({lang: $("f-lang").value}); });
    $("f-tier").addEventListener("change", function () { update({tier: $("f-tier").value}); });
    $("f-cand").addEventListener("change", function () { update({cand: parseInt($("f-cand").value || "0", 10)}); });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=change]"), function (r) {
      r.addEventListener("change", function () { if (r.checked) { update({change: r.value}); } });
    });
    var timer = null;
    $("f-search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { update({q: $("f-search").value.trim().toLowerCase()}); }, 120);
    });
    $("items-more").addEventListener("click", function () { state.shown += PAGE; render(); });
    Array.prototype.forEach.call(document.querySelectorAll("button.jump"), function (b) {
      b.addEventListener("click", function () {
        var rec = byKey[b.dataset.key];
        update({key: b.dataset.key, lang: b.dataset.lang === "all" ? "" : b.dataset.lang, tier: "",
                cand: Math.max(0, rec.candidates.indexOf(b.dataset.cand)), change: b.dataset.change, q: ""});
        $("explorer").scrollIntoView();
      });
    });
    syncControls();
    render();
  }

  init();
}());
