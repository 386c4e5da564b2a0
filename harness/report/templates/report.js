/* azeval report: pages, filters and searches the case rows embedded as JSON.
   Model text is data: it is only ever written with textContent, never parsed as markup.
   The URL hash holds the view (#filter=failures&q=refund&page=2&expand=1), so a view can
   be linked to, and a headless browser can be pointed at one. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("azeval-data").textContent);
  // Texts (messages, replies, models) and check outcomes are stored once and named by index.
  var cols = data.columns, rows = data.rows, texts = data.texts, checks = data.checks;
  var size = data.pageSize || 50;
  // A cell is a list whose positions data.cell names (see harness/report/rows.py): C.r is
  // where a cell holds its reply.
  var C = {};
  // As harness/report/money.py writes dollars: unknown (no price) is never "$0".
  function usd(v) {
    if (v === null || v === undefined) return "unknown";
    if (v === 0) return "$0.00";
    return "$" + (Math.abs(v) >= 0.01 ? v.toFixed(4) : v.toFixed(6));
  }
  data.cell.forEach(function (name, i) { C[name] = i; });
  // A large run's other cases (harness/report/summarised.py, in a data block of their
  // own), after those in full: a key, a cell per column ([verdict, repeats passed,
  // repeats, the journal line of each repeat]) and flags. Their full records are lines of
  // results.jsonl, which a page opened from a file may not read: it links to the file
  // instead, as seen from this page (found by its name). A baseline file has no journal:
  // its cells have no lines, and no link.
  var brief = data.brief || null, journals = null;
  if (brief) {
    var page = decodeURIComponent(location.pathname.split("/").pop());
    journals = brief.journals[page] || brief.journals[Object.keys(brief.journals)[0]];
    JSON.parse(document.getElementById("azeval-brief").textContent).forEach(function (b) {
      rows.push({ k: b[0], s: b[1], f: b[2] || [] });
    });
  }
  var FILTERS = { all: null, failures: "failed", regressions: "regressed", differs: "differs", flaky: "flaky", errors: "errored" };
  var FLAG_LABEL = { regressed: "regression", differs: "targets differ", errored: "error", failed: "not passed", flaky: "flaky" };
  var CHECK_MARK = { pass: "\u2713 pass", fail: "\u2717 fail", "n/a": "n/a", error: "! error" };
  // Word diffs use the CLI's tokens (harness/results/compare.py): a word with the whitespace
  // after it, a punctuation mark with its whitespace, or leading whitespace.
  var TOKEN = /[\p{L}\p{M}\p{N}_]+\s*|[^\p{L}\p{M}\p{N}_\s]\s*|\s+/gu;
  var MAX_DIFF_TOKENS = 4000;  // per side, as in the CLI: past it, show remove-all/add-all
  var MAX_DIFF_CELLS = 1000000;  // LCS table of the differing middles: ~50 ms, 2 MB at most
  var state = { filter: "all", q: "", page: 1, expand: false };
  var opened = {};
  var haystacks = null;
  var body = document.getElementById("cases-body");
  var search = document.getElementById("q");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function badge(kind, text) { return el("span", "badge b-" + kind.replace("/", ""), text); }

  function pct(x) { return Math.round(100 * x) + "%"; }

  // "95% CI 24–91%": how sure a pass rate over repeats is (Wilson score interval).
  function interval(cell) {
    var wi = cell[C.wi];
    return wi ? "95% CI " + pct(wi[0]) + "\u2013" + pct(wi[1]) : "";
  }

  function verdictBadge(cell) {
    if (!cell) return badge("none", "\u2014");
    var text = cell[C.v] + (cell[C.n] > 1 ? " " + cell[C.p] + "/" + cell[C.n] : "");
    var node = badge(cell[C.v], text);
    if (cell[C.wi]) node.title = cell[C.p] + " of " + cell[C.n] + " repeats passed \u00b7 " + interval(cell);
    return node;
  }

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var filter = params.get("filter");
    state.filter = Object.prototype.hasOwnProperty.call(FILTERS, filter) ? filter : "all";
    state.q = params.get("q") || "";
    state.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    state.expand = params.get("expand") === "1";
    search.value = state.q;
  }

  function writeHash() {
    var params = new URLSearchParams();
    if (state.filter !== "all") params.set("filter", state.filter);
    if (state.q) params.set("q", state.q);
    if (state.page > 1) params.set("page", String(state.page));
    if (state.expand) params.set("expand", "1");
    var hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function haystack(i) {
    if (!haystacks) haystacks = new Array(rows.length);
    if (haystacks[i] === undefined) {
      var row = rows[i], parts = [row.k];
      if (row.s) { haystacks[i] = row.k.toLowerCase(); return haystacks[i]; }
      row.m.forEach(function (m) { parts.push(texts[m[1]]); });
      row.c.forEach(function (c) {
        if (!c) return;
        if (c[C.t]) c[C.t].forEach(function (t) { parts.push(texts[t[0]]); if (t[1] !== null) parts.push(texts[t[1]]); });
        else if (c[C.r] !== null) parts.push(texts[c[C.r]]);
        if (c[C.tc]) c[C.tc].forEach(function (call) { parts.push(texts[call[0]], texts[call[1]]); });
      });
      haystacks[i] = parts.join("\n").toLowerCase();
    }
    return haystacks[i];
  }

  function selected() {
    var flag = FILTERS[state.filter], q = state.q.toLowerCase(), out = [];
    for (var i = 0; i < rows.length; i++) {
      if (flag && rows[i].f.indexOf(flag) < 0) continue;
      if (q && haystack(i).indexOf(q) < 0) continue;
      out.push(rows[i]);
    }
    return out;
  }

  function renderHead() {
    var tr = el("tr");
    tr.appendChild(el("th"));
    tr.appendChild(el("th", null, "case"));
    cols.forEach(function (c) { tr.appendChild(el("th", null, c.label)); });
    tr.appendChild(el("th", null, "reply (" + (cols.length ? cols[0].label : "") + ")"));
    document.getElementById("cases-head").appendChild(tr);
  }

  function renderButtons() {
    var counts = { all: rows.length };
    Object.keys(FILTERS).forEach(function (name) {
      if (FILTERS[name]) counts[name] = rows.filter(function (r) { return r.f.indexOf(FILTERS[name]) >= 0; }).length;
    });
    document.querySelectorAll(".filters button").forEach(function (button) {
      var name = button.getAttribute("data-filter");
      if (!button.querySelector(".k")) button.appendChild(el("span", "k", counts[name]));
      button.classList.toggle("on", name === state.filter);
      button.setAttribute("aria-pressed", name === state.filter ? "true" : "false");
    });
  }

  // Tool calls ([name, arguments, id] text indices): each function's name, and its
  // arguments as the pretty JSON rows.py made of them.
  function toolCalls(calls) {
    var box = el("div", "calls");
    calls.forEach(function (call) {
      var one = el("div", "call");
      var head = el("div", "call-head");
      head.appendChild(el("span", "call-kind", "tool call"));
      head.appendChild(el("code", "call-name", texts[call[0]]));
      if (texts[call[2]]) head.appendChild(el("span", "muted call-id", texts[call[2]]));
      one.appendChild(head);
      one.appendChild(el("pre", "text args", texts[call[1]]));
      box.appendChild(one);
    });
    return box;
  }

  // What a reply is: its text, its tool calls, both, or (when neither) "no reply".
  function replyBox(box, reply, calls) {
    if (reply !== null) box.appendChild(el("pre", "text reply", texts[reply]));
    if (calls) box.appendChild(toolCalls(calls));
    if (reply === null && !calls) box.appendChild(el("div", "muted", "no reply"));
  }

  // A message is [role, text, name, tool calls, tool_call_id]; the last three may be null.
  function messages(row) {
    var box = el("div", "msgs");
    row.m.forEach(function (m) {
      var line = el("div", "msg"), role = el("div", "role", m[0]);
      if (m[2] !== null && m[2] !== undefined) role.appendChild(el("div", "msg-name", texts[m[2]]));
      line.appendChild(role);
      var content = el("div", "msg-body");
      if (m[4] !== null && m[4] !== undefined) content.appendChild(el("div", "muted call-id", "answers " + texts[m[4]]));
      if (texts[m[1]] || !m[3]) content.appendChild(el("pre", "text", texts[m[1]]));
      if (m[3]) content.appendChild(toolCalls(m[3]));
      line.appendChild(content);
      box.appendChild(line);
    });
    return box;
  }

  function card(col, cell) {
    var box = el("div", "card" + (col.baseline ? " base" : ""));
    var head = el("h3", null, col.label);
    head.appendChild(verdictBadge(cell));
    box.appendChild(head);
    if (!cell) { box.appendChild(el("div", "muted", "not run on this target")); return box; }
    if (cell[C.sc] !== null) {
      var said = "score " + cell[C.sc].toFixed(3) + (cell[C.n] > 1 ? " (mean of repeats)" : "");
      if (cell[C.th] !== null) said += (cell[C.sc] >= cell[C.th] ? " ≥ " : " < ") + "threshold " + cell[C.th];
      box.appendChild(el("div", "case-score", said));
    }
    if (cell[C.n] > 1) box.appendChild(el("div", "repeats", cell[C.p] + "/" + cell[C.n] + " repeats passed, " + interval(cell)));
    if (cell[C.t]) {
      // A conversation: each turn's question and this target's reply, in order.
      cell[C.t].forEach(function (t, i) {
        var turn = el("div", "turn");
        turn.appendChild(el("div", "turn-title", "turn " + (i + 1) + (i ? " \u00b7 user" : "")));
        if (i) turn.appendChild(el("pre", "text ask", texts[t[0]]));
        replyBox(turn, t[1], t[2]);
        box.appendChild(turn);
      });
    } else {
      replyBox(box, cell[C.r], cell[C.tc]);
    }
    (cell[C.e] || []).forEach(function (e) { box.appendChild(el("div", "err-box", e)); });
    if (cell[C.ck].length) {
      var table = el("table", "checks"), tbody = el("tbody");
      cell[C.ck].forEach(function (index) {
        var c = checks[index];
        var tr = el("tr", "st-" + c[1]), td = el("td");
        td.appendChild(badge(c[1] === "n/a" ? "na" : c[1], CHECK_MARK[c[1]] || c[1]));
        tr.appendChild(td);
        tr.appendChild(el("td", null, c[0]));
        tr.appendChild(el("td", null, c[2]));
        tr.appendChild(el("td", "n score", checkScore(c)));
        tr.appendChild(el("td", "muted", c[3]));
        tbody.appendChild(tr);
        if (c[4]) tbody.appendChild(judgeRow(c[4]));
      });
      table.appendChild(tbody);
      box.appendChild(table);
    } else {
      box.appendChild(el("div", "muted", "no check applied"));
    }
    var meta = [];
    if (cell[C.fr]) meta.push("finish: " + cell[C.fr]);
    meta.push("tokens " + cell[C.tk][0] + " / " + cell[C.tk][1]);
    if (cell[C.l] !== null) meta.push(cell[C.l] + " ms");
    meta.push("cost " + usd(cell[C.co]));
    if (cell[C.mo] !== null) meta.push("model " + texts[cell[C.mo]]);
    if (cell[C.n] > 1) meta.push("showing repeat " + cell[C.shown]);
    box.appendChild(el("div", "meta", meta.join(" \u00b7 ")));
    if (cell[C.st] !== null) box.appendChild(el("div", "meta stream", cell[C.st]));
    if (cell[C.hi] !== null) box.appendChild(el("div", "meta history", cell[C.hi]));
    if (cell[C.pm] !== null) box.appendChild(el("div", "meta pool", cell[C.pm]));
    return box;
  }

  // A check's score (to 3 places), its weight when not 1 and the metric it counts in:
  // "0.800 ×3 · accuracy". Empty for a check that measures nothing and names nothing.
  function checkScore(c) {
    var parts = [];
    if (c[5] !== null && c[5] !== undefined) parts.push(c[5].toFixed(3));
    if (c[6] !== null && c[6] !== undefined) parts.push("×" + c[6]);
    var head = parts.join(" ");
    if (c[7] !== null && c[7] !== undefined) head += (head ? " · " : "") + c[7];
    return head;
  }

  // A model-graded check's judgement under its row: who judged, at what cost, and each
  // sample's verdict and reasoning (model text: set as text, never as HTML).
  function judgeRow(j) {
    var tr = el("tr", "judge"), td = el("td");
    td.colSpan = 5;
    var details = el("details", "judge");
    var head = ["judge " + j[0]];
    if (j[1]) head.push(j[1]);
    head.push(j[8].length + (j[8].length === 1 ? " sample" : " samples"));
    if (j[8].length > 1 && j[4] !== null) head.push(Math.round(j[4] * 100) + "% agree");
    head.push("tokens " + j[5] + " / " + j[6]);
    if (j[7] !== null) head.push("$" + j[7].toFixed(5));
    details.appendChild(el("summary", null, head.join(" \u00b7 ")));
    details.appendChild(el("div", "muted", "template " + j[2] + " \u00b7 answer " + j[3]));
    j[8].forEach(function (s) {
      var box = el("div", "sample");
      box.appendChild(el("div", "turn-title",
        "seed " + s[0] + ": " + (s[1] === null ? "no valid verdict" : String(s[1]))));
      if (s[2]) box.appendChild(el("pre", "text", s[2]));
      if (s[3] && s[1] === null) box.appendChild(el("pre", "text muted", s[3]));
      details.appendChild(box);
    });
    td.appendChild(details);
    tr.appendChild(td);
    return tr;
  }

  // A word diff as [op, text] runs (op "=", "-" or "+"), computed only when a row opens so
  // the page carries no diffs. Equal runs take the after side's text, so "=" and "+" runs
  // rebuild the after reply exactly; within a change, removals come before additions.
  function wordDiff(before, after) {
    if (before === after) return before ? [["=", before]] : [];
    var a = before.match(TOKEN) || [], b = after.match(TOKEN) || [];
    if (a.length > MAX_DIFF_TOKENS || b.length > MAX_DIFF_TOKENS) {
      return [["-", before], ["+", after]].filter(function (op) { return op[1]; });
    }
    // Match on the words alone, so "Contoso" ending a sentence still matches "Contoso ".
    function key(t) { return t.trimEnd() || t; }
    var ka = a.map(key), kb = b.map(key);
    var start = 0, limit = Math.min(a.length, b.length), end = 0;
    while (start < limit && ka[start] === kb[start]) start++;
    while (end < limit - start && ka[a.length - 1 - end] === kb[b.length - 1 - end]) end++;
    var out = [], removed = "", added = "";
    function flush() {
      if (removed) out.push(["-", removed]);
      if (added) out.push(["+", added]);
      removed = added = "";
    }
    function same(text) {
      flush();
      if (!text) return;
      if (out.length && out[out.length - 1][0] === "=") out[out.length - 1][1] += text;
      else out.push(["=", text]);
    }
    same(b.slice(0, start).join(""));
    var n = a.length - start - end, m = b.length - start - end, i = 0, j = 0;
    if (n * m > MAX_DIFF_CELLS) {
      removed = a.slice(start, start + n).join("");
      added = b.slice(start, start + m).join("");
      i = n; j = m;
    } else {
      // lcs[i * w + j]: the longest common run of a[start+i..] and b[start+j..].
      var w = m + 1, lcs = new Uint16Array((n + 1) * w);
      for (var x = n - 1; x >= 0; x--) {
        for (var y = m - 1; y >= 0; y--) {
          lcs[x * w + y] = ka[start + x] === kb[start + y]
            ? lcs[(x + 1) * w + y + 1] + 1
            : Math.max(lcs[(x + 1) * w + y], lcs[x * w + y + 1]);
        }
      }
      while (i < n && j < m) {
        if (ka[start + i] === kb[start + j]) { same(b[start + j]); i++; j++; }
        else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) { removed += a[start + i]; i++; }
        else { added += b[start + j]; j++; }
      }
    }
    for (; i < n; i++) removed += a[start + i];
    for (; j < m; j++) added += b[start + j];
    same(b.slice(b.length - end).join(""));
    flush();
    return out;
  }

  function diffs(row) {
    var box = el("div");
    row.d.forEach(function (d) {
      var a = row.c[d[0]][C.r], b = row.c[d[1]][C.r];
      var before = a === null ? "" : texts[a], after = b === null ? "" : texts[b];
      // Only a baseline is "before"; two targets of one run are compared, not ordered.
      var link = cols[d[0]].baseline ? " \u2192 " : " vs ";
      box.appendChild(el("div", "section-title", "Word diff \u00b7 " + cols[d[0]].label + link + cols[d[1]].label));
      if (before === after) { box.appendChild(el("div", "muted", "identical replies")); return; }
      var pre = el("div", "diff");
      wordDiff(before, after).forEach(function (op) {
        pre.appendChild(op[0] === "=" ? document.createTextNode(op[1]) : el(op[0] === "+" ? "ins" : "del", null, op[1]));
      });
      box.appendChild(pre);
    });
    return box;
  }

  function detail(row) {
    var tr = el("tr", "detail"), td = el("td");
    td.colSpan = cols.length + 3;
    if (row.m.length) {
      td.appendChild(el("div", "section-title", "Messages"));
      td.appendChild(messages(row));
    }
    td.appendChild(el("div", "section-title", "Replies"));
    var side = el("div", "side");
    cols.forEach(function (col, i) { side.appendChild(card(col, row.c[i])); });
    td.appendChild(side);
    if (row.d.length) td.appendChild(diffs(row));
    tr.appendChild(td);
    return tr;
  }

  function snippet(cell) {
    if (cell[C.r] !== null) return texts[cell[C.r]].slice(0, 200);
    if (cell[C.tc]) return "calls " + cell[C.tc].map(function (c) { return texts[c[0]]; }).join(", ");
    return "";
  }

  // A listed case's cell: its verdict (with repeats passed, when repeated).
  function briefBadge(cell) {
    if (!cell) return badge("none", "\u2014");
    var n = cell[2];
    return badge(cell[0], cell[0] + (n > 1 ? " " + cell[1] + "/" + n : ""));
  }

  // "results.jsonl line 12346": the journal of column ``col``, where that line is.
  function lineLink(col, line) {
    var a = el("a", "line", (cols[col].baseline ? "baseline " : "") + "results.jsonl line " + line);
    a.href = journals[col];
    a.title = "opens " + journals[col] + " as text: line " + line + " holds this result";
    a.addEventListener("click", function (event) { event.stopPropagation(); });
    return a;
  }

  function briefLinks(row) {
    var box = el("span", "lines");
    row.s.forEach(function (cell, i) {
      if (!cell || !journals[i]) return;
      cell.slice(3).forEach(function (line) {
        if (box.childNodes.length) box.appendChild(document.createTextNode(" "));
        box.appendChild(lineLink(i, line));
      });
    });
    return box;
  }

  function briefDetail(row) {
    var tr = el("tr", "detail"), td = el("td");
    td.colSpan = cols.length + 3;
    td.appendChild(el("div", "section-title", "Listed by id: the full record of each result is a line of results.jsonl"));
    row.s.forEach(function (cell, i) {
      if (!cell) return;
      var line = el("div", "brief-line");
      line.appendChild(el("strong", null, cols[i].label + " "));
      line.appendChild(briefBadge(cell));
      if (!journals[i]) line.appendChild(el("span", "muted", " (a baseline file: no journal to link to)"));
      else cell.slice(3).forEach(function (n, repeat) {
        line.appendChild(document.createTextNode(cell[2] > 1 ? " repeat " + repeat + ": " : " "));
        line.appendChild(lineLink(i, n));
        line.appendChild(el("code", "muted", " sed -n '" + n + "p' " + decodeURIComponent(journals[i])));
      });
      td.appendChild(line);
    });
    tr.appendChild(td);
    return tr;
  }

  function caseRow(row) {
    var tr = el("tr", "case"), key = el("td", "key-cell");
    tr.appendChild(el("td", "tw", "\u25b8"));
    key.appendChild(el("span", null, row.k + " "));
    row.f.forEach(function (f) { if (f === "regressed" || f === "differs" || f === "flaky") key.appendChild(badge(f, FLAG_LABEL[f])); });
    tr.appendChild(key);
    if (row.s) {
      row.s.forEach(function (cell) { var td = el("td"); td.appendChild(briefBadge(cell)); tr.appendChild(td); });
      var snip = el("td", "snip");
      snip.appendChild(briefLinks(row));
      tr.appendChild(snip);
      return tr;
    }
    row.c.forEach(function (cell) {
      var td = el("td");
      td.appendChild(verdictBadge(cell));
      if (cell && cell[C.sc] !== null) td.appendChild(el("span", "cell-score", " " + cell[C.sc].toFixed(2)));
      tr.appendChild(td);
    });
    var first = row.c[0];
    tr.appendChild(el("td", "snip", first ? snippet(first) : ""));
    return tr;
  }

  function toggle(row, tr) {
    var next = tr.nextSibling;
    if (next && next.className === "detail") {
      next.remove(); tr.classList.remove("open"); delete opened[row.k];
    } else {
      tr.after(row.s ? briefDetail(row) : detail(row)); tr.classList.add("open"); opened[row.k] = true;
    }
  }

  function pagerButton(text, page, disabled) {
    var b = el("button", null, text);
    b.type = "button";
    b.disabled = disabled;
    b.addEventListener("click", function () { state.page = page; update(); });
    return b;
  }

  function render() {
    var list = selected(), pages = Math.max(1, Math.ceil(list.length / size));
    if (state.page > pages) state.page = pages;
    var start = (state.page - 1) * size, shown = list.slice(start, start + size);
    body.replaceChildren();
    if (!shown.length) {
      var tr = el("tr"), td = el("td", "empty", "No case matches.");
      td.colSpan = cols.length + 3;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    shown.forEach(function (row) {
      var tr = caseRow(row);
      tr.addEventListener("click", function () { toggle(row, tr); });
      body.appendChild(tr);
      if (state.expand || opened[row.k]) { tr.classList.add("open"); body.appendChild(row.s ? briefDetail(row) : detail(row)); }
    });
    document.getElementById("count").textContent = list.length
      ? "showing " + (start + 1) + "\u2013" + (start + shown.length) + " of " + list.length
      : "0 of " + rows.length;
    var pager = document.getElementById("pager");
    pager.replaceChildren();
    if (pages > 1) {
      pager.appendChild(pagerButton("\u2039 prev", state.page - 1, state.page <= 1));
      pager.appendChild(el("span", "muted", "page " + state.page + " of " + pages));
      pager.appendChild(pagerButton("next \u203a", state.page + 1, state.page >= pages));
    }
    renderButtons();
  }

  function update() { writeHash(); render(); }

  document.querySelectorAll(".filters button").forEach(function (button) {
    button.addEventListener("click", function () {
      state.filter = button.getAttribute("data-filter"); state.page = 1; update();
    });
  });
  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = search.value; state.page = 1; update(); }, 150);
  });
  window.addEventListener("hashchange", function () { readHash(); render(); });
  renderHead();
  readHash();
  render();
  document.body.setAttribute("data-ready", "1");
})();
