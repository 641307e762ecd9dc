# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The style sheet and the script of the HTML fleet report (static text, inlined into every page).

Layout rule: every data table has ``table-layout: fixed`` and cells that wrap anywhere, so no thumbprint,
command or subject can widen a column or spill into the next one; the few ``nowrap`` pieces (badges, dates) sit in
columns wide enough for them at 1024 px. The script renders the large tables from the page's JSON block one page
of rows at a time; it only sets ``textContent`` and ``href`` values that start with http(s).
"""

from __future__ import annotations

STYLE = """\
:root {
  --ink: #1d2433; --muted: #5b6577; --line: #dfe3ea; --bg: #f4f6f9; --card: #ffffff; --brand: #17324d;
  --critical: #c62828; --critical-bg: #fdecea; --warning: #b35f00; --warning-bg: #fff4e0;
  --info: #1e63b5; --info-bg: #e8f0fb; --ok: #2e7d32; --ok-bg: #e9f5ea;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "Segoe UI", system-ui, -apple-system, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: linear-gradient(120deg, #0f2438, var(--brand) 60%, #23517a); color: #fff; padding: 20px 24px; }
header h1 { margin: 0; font-size: 24px; font-weight: 600; }
header .generated { margin: 4px 0 0; color: #c5d3e2; font-size: 13px; }
main { padding: 20px 24px 40px; max-width: 1600px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px;
          margin: 0 0 20px; overflow-x: auto; }
h2 { font-size: 18px; margin: 0 0 10px; font-weight: 600; }
h3 { font-size: 14px; margin: 16px 0 8px; }
p.lead, p.why { margin: 0 0 12px; color: var(--muted); max-width: 110ch; }
p.why { border-left: 4px solid var(--info); background: var(--info-bg); color: var(--ink); padding: 8px 12px;
        border-radius: 6px; }
a { color: var(--info); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 14px; margin: 0 0 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px;
        border-top: 4px solid var(--brand); min-width: 0; }
.card .value { font-size: 26px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.card .detail { color: var(--muted); font-size: 12px; margin-top: 2px; overflow-wrap: anywhere; }
.card.critical { border-top-color: var(--critical); } .card.critical .value { color: var(--critical); }
.card.warning { border-top-color: var(--warning); } .card.warning .value { color: var(--warning); }
.card.info { border-top-color: var(--info); } .card.info .value { color: var(--info); }
.card.ok { border-top-color: var(--ok); }
.badge { display: inline-block; padding: 1px 7px; border-radius: 999px; font-size: 12px; font-weight: 600;
         max-width: 100%; overflow-wrap: anywhere; }
.badge.critical { background: var(--critical); color: #fff; }
.badge.warning { background: var(--warning); color: #fff; }
.badge.info { background: var(--info); color: #fff; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
table { border-collapse: collapse; width: 100%; }
table.data { table-layout: fixed; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td { overflow-wrap: anywhere; word-break: normal; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; background: #f8f9fb;
     overflow-wrap: anywhere; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "Cascadia Mono", Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; }
.muted { color: var(--muted); }
.hosts { color: var(--muted); font-size: 12px; }
.callout { border-left: 4px solid var(--warning); background: var(--warning-bg); padding: 8px 12px;
           border-radius: 6px; }
col.c-sev { width: 88px; } col.c-date { width: 96px; } col.c-num { width: 76px; } col.c-link { width: 84px; }
col.c-host { width: 11%; } col.c-kind { width: 130px; } col.c-role { width: 170px; } col.c-key { width: 76px; }
col.c-store { width: 64px; } col.c-thumb { width: 16%; }
col.c-problem { width: 34%; } col.c-servers { width: 20%; }
col.c-finding { width: 16%; } col.c-cert { width: 16%; } col.c-message { width: 24%; } col.c-product { width: 20%; }
#certificates { font-size: 13px; } #certificates .mono { font-size: 11px; } #certificates col.c-date { width: 92px; }
col.c-site, col.c-dag { width: 9%; } col.c-status { width: 22%; }
#servers-table col.c-num { width: 64px; }
.toolbar { display: flex; gap: 10px; align-items: center; margin-bottom: 10px; flex-wrap: wrap; }
.toolbar input, .toolbar select, .pager button { font: inherit; padding: 5px 10px; border: 1px solid #c9cfd9;
  border-radius: 6px; background: #fff; }
.toolbar input { flex: 0 1 auto; max-width: 100%; }
.pager { display: flex; gap: 10px; align-items: center; margin: 8px 0 0; flex-wrap: wrap; }
.pager button { cursor: pointer; } .pager button:disabled { cursor: default; opacity: .5; }
table.data th button { all: unset; cursor: pointer; }
table.data th button::after { content: " \\2195"; color: #b3bac6; }
table.data th[aria-sort="ascending"] button::after { content: " \\2191"; color: var(--ink); }
table.data th[aria-sort="descending"] button::after { content: " \\2193"; color: var(--ink); }
table.data tbody tr:hover { background: #f7f9fc; }
tr.sev-critical td:first-child { box-shadow: inset 3px 0 var(--critical); }
tr.sev-warning td:first-child { box-shadow: inset 3px 0 var(--warning); }
tr.sev-info td:first-child { box-shadow: inset 3px 0 var(--info); }
.timeline { width: 100%; height: auto; display: block; min-width: 640px; }
.timeline .lane { fill: #fafbfc; } .timeline .lane.alt { fill: #f3f5f8; }
.timeline .expired { fill: var(--critical-bg); opacity: .7; }
.timeline .window-critical { fill: var(--critical-bg); opacity: .45; }
.timeline .window-warning { fill: var(--warning-bg); opacity: .8; }
.timeline .tick { stroke: #d5dae2; }
.timeline .today { stroke: var(--ink); stroke-width: 1.5; stroke-dasharray: 4 3; }
.timeline text { font-size: 11px; fill: var(--muted); } .timeline text.lane-label { font-size: 12px; fill: var(--ink); }
.timeline .bucket { stroke: #fff; stroke-width: 1; fill-opacity: .85; }
.timeline .bucket.critical { fill: var(--critical); } .timeline .bucket.warning { fill: var(--warning); }
.timeline .bucket.info { fill: var(--info); } .timeline .bucket.ok { fill: var(--ok); }
.timeline .bucket.clamped { stroke: var(--ink); stroke-dasharray: 2 1; }
.legend { display: flex; gap: 6px 16px; color: var(--muted); font-size: 12px; margin-top: 6px; flex-wrap: wrap; }
.legend .note { flex: 1 1 30em; text-align: right; }
.legend span:not(.note)::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 5px; vertical-align: -1px; background: currentColor; }
.legend .critical { color: var(--critical); } .legend .warning { color: var(--warning); }
.legend .info { color: var(--info); } .legend .ok { color: var(--ok); }
.dag td.role { font-weight: 600; }
.dag .cert { padding: 2px 0 4px; }
.dag tr.mismatch td.role { color: var(--critical); }
.dag td.odd { background: var(--critical-bg); outline: 2px solid var(--critical); outline-offset: -2px; }
.dag td.odd .flag { color: var(--critical); font-weight: 700; margin-bottom: 2px; }
footer { color: var(--muted); font-size: 12px; padding: 0 24px 24px; }
"""

SCRIPT = """\
(function () {
  "use strict";
  var LANES = ["critical", "warning", "info", "ok"];
  var PAGE_SIZE = 50;
  var data = JSON.parse(document.getElementById("report-data").textContent);
  if (window.performance && performance.mark) { performance.mark("exchange-pki-data"); }
  var hosts = data.hosts;

  function node(tag, className, text) {
    var element = document.createElement(tag);
    if (className) { element.className = className; }
    if (text !== undefined && text !== null) { element.textContent = String(text); }
    return element;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i += 1) {
      var child = arguments[i];
      if (child === null || child === undefined) { continue; }
      parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return parent;
  }
  function td(className) {
    var cell = node("td", className);
    return add.apply(null, [cell].concat(Array.prototype.slice.call(arguments, 1)));
  }
  function badge(lane) { return node("span", "badge " + LANES[lane], LANES[lane]); }
  function source(url) {
    if (!url || !/^https?:[/][/]/i.test(url)) { return node("span", "muted", "-"); }
    var link = node("a", "", "source");
    link.href = url; link.rel = "noopener noreferrer"; link.target = "_blank";
    return link;
  }
  function hostName(index) { return index >= 0 ? hosts[index] : "?"; }
  function serverList(indexes) {
    var names = indexes.slice(0, 8).map(hostName).join(", ");
    var more = indexes.length > 8 ? " and " + (indexes.length - 8) + " more" : "";
    return [node("strong", "", indexes.length + (indexes.length === 1 ? " server" : " servers")), node("br"),
            node("span", "hosts", names + more)];
  }
  function issuer(index) { return data.issuers[index] || ["-", ""]; }

  var S = data.strings, N = "\\n";
  var TABLES = {
    plan: {
      rows: data.plan, lane: 0, strings: [2, 6, 7, 8],
      text: function (r) {
        return r[1] + N + r[3] + N + r[4] + N + S[r[6]] + N + S[r[8]] + N + r[5].map(hostName).join(" ");
      },
      row: function (r) {
        var problem = td("", node("strong", "", r[1]));
        if (r[3] || r[4]) {
          add(problem, node("br"), node("span", "muted", r[4]), " ", node("span", "mono muted", r[3]));
        }
        add(problem, node("br"), node("code", "muted", S[r[8]]));
        return [td("", badge(r[0])), problem, add.apply(null, [td("")].concat(serverList(r[5]))), td("", S[r[6]]),
                td("", source(S[r[7]]))];
      }
    },
    "findings-table": {
      rows: data.findings, lane: 1, strings: [2, 6, 7],
      text: function (r) {
        return hosts[r[0]] + N + LANES[r[1]] + N + S[r[2]] + N + r[3] + N + r[4] + N + r[5] + N +
          S[r[6]];
      },
      row: function (r) {
        var cert = r[3] ? td("", r[4], node("br"), node("span", "mono muted", r[3])) : td("muted", "server");
        var remedy = td("", S[r[6]]);
        if (S[r[7]]) { add(remedy, " ", source(S[r[7]])); }
        return [td("", badge(r[1])), td("", hosts[r[0]]), td("", node("code", "", S[r[2]])), cert, td("", r[5]),
                remedy];
      }
    },
    "servers-table": {
      rows: data.servers, lane: 11, strings: [2, 3, 4, 5],
      text: function (r) {
        return hosts[r[0]] + N + r[1] + N + S[r[2]] + N + S[r[3]] + N + S[r[4]] + N + S[r[5]] + N +
          r[10];
      },
      row: function (r) {
        var name = td("", hosts[r[0]]);
        if (r[1]) { add(name, " ", node("span", "muted", "(" + r[1] + ")")); }
        function count(i, lane) { return r[i] ? td("num", node("span", "badge " + lane, r[i])) : td("num", "0"); }
        return [name, td("", S[r[2]] || "-", " ", node("span", "mono muted", S[r[3]])), td("", S[r[4]] || "-"),
                td("", S[r[5]] || "-"), td("num", r[6] === null ? "-" : r[6]), count(7, "critical"),
                count(8, "warning"), count(9, "info"),
                r[12] ? td("", r[10]) : td("", node("span", "badge critical", "not collected"), " ", r[10])];
      }
    },
    certificates: {
      rows: data.certificates, lane: 5, strings: [2, 3, 6, 9, 10],
      text: function (r) {
        return hosts[r[0]] + N + r[1] + N + S[r[2]] + N + S[r[3]] + N + LANES[r[5]] + N + S[r[6]] +
          "\\n" + r[7] + N + issuer(r[8])[1] + N + S[r[9]] + N + S[r[10]];
      },
      sort: { 8: function (r) { return issuer(r[8])[0].toLowerCase(); } },
      row: function (r) {
        var issued = td("", issuer(r[8])[0]);
        issued.title = issuer(r[8])[1];
        return [td("", hosts[r[0]]), td("", r[1]), td("", S[r[2]]), td("", S[r[3]]),
                td("num", r[4] === null ? "-" : r[4]), td("", badge(r[5])), td("", S[r[6]]),
                td("mono", r[7]), issued, td("", S[r[9]] || "-"), td("", S[r[10]] || "-")];
      }
    }
  };

  function Table(id, spec) {
    var table = document.getElementById(id);
    var section = table.closest("section");
    var body = table.tBodies[0];
    var search = section.querySelector("input.filter");
    var severity = section.querySelector("select.severity");
    var count = section.querySelector(".count");
    var pager = section.querySelector(".pager");
    var noun = count ? count.textContent.replace(/^[0-9]+ /, "") : "rows";
    var rows = spec.rows, texts = [], built = 0, order = [], shown = [], page = 0;
    for (var i = 0; i < rows.length; i += 1) { order.push(i); }

    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
      page = Math.min(Math.max(page, 0), pages - 1);
      var fragment = document.createDocumentFragment();
      var end = Math.min(shown.length, (page + 1) * PAGE_SIZE);
      for (var k = page * PAGE_SIZE; k < end; k += 1) {
        var r = rows[shown[k]];
        var tr = node("tr", "sev-" + LANES[r[spec.lane]]);
        tr.dataset.severity = LANES[r[spec.lane]];
        add.apply(null, [tr].concat(spec.row(r)));
        fragment.appendChild(tr);
      }
      body.textContent = "";
      body.appendChild(fragment);
      if (count) { count.textContent = shown.length + " of " + rows.length + " " + noun; }
      pager.textContent = "";
      if (pages > 1) {
        var previous = node("button", "", "\\u2039 Previous"), next = node("button", "", "Next \\u203a");
        previous.type = next.type = "button";
        previous.disabled = page === 0; next.disabled = page === pages - 1;
        previous.addEventListener("click", function () { page -= 1; draw(); });
        next.addEventListener("click", function () { page += 1; draw(); });
        add(pager, previous, node("span", "muted", "Page " + (page + 1) + " of " + pages + " (rows " +
            (page * PAGE_SIZE + 1) + "-" + end + ")"), next);
      }
    }

    function indexTexts(upTo) {
      for (; built < upTo; built += 1) { texts.push(spec.text(rows[built]).toLowerCase()); }
    }

    function warm() {
      indexTexts(Math.min(rows.length, built + 10000));
      if (built < rows.length) { setTimeout(warm, 0); }
    }

    function apply() {
      var query = search ? search.value.trim().toLowerCase() : "";
      var wanted = severity && severity.value ? LANES.indexOf(severity.value) : -1;
      if (query) { indexTexts(rows.length); }
      shown = [];
      for (var j = 0; j < order.length; j += 1) {
        var index = order[j];
        if ((wanted < 0 || rows[index][spec.lane] === wanted) && (!query || texts[index].indexOf(query) !== -1)) {
          shown.push(index);
        }
      }
      page = 0;
      draw();
      return shown.length;
    }

    function sortBy(header) {
      var key = Number(header.dataset.key);
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      var interned = spec.strings.indexOf(key) !== -1;
      var value = (spec.sort && spec.sort[key]) || function (r) {
        var v = interned ? S[r[key]] : r[key];
        if (Array.isArray(v)) { return v.length; }
        if (v === null || v === undefined || v === "") {
          return !interned && typeof rows[0][key] === "number" ? -Infinity : "";
        }
        return typeof v === "string" ? v.toLowerCase() : v;
      };
      var keyed = order.map(function (index) { return [value(rows[index]), index]; });
      keyed.sort(function (a, b) {
        return (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]) * (ascending ? 1 : -1);
      });
      order = keyed.map(function (entry) { return entry[1]; });
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      apply();
    }

    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
      var button = header.querySelector("button");
      if (button && header.dataset.key) { button.addEventListener("click", function () { sortBy(header); }); }
    });
    if (search) { search.addEventListener("input", apply); }
    if (severity) { severity.addEventListener("change", apply); }
    apply();
    table.dataset.sortable = "ready";
    setTimeout(warm, 0);  // the search index is built while the reader looks at the first page
    return {
      filter: function (text, lane) {
        if (search) { search.value = text || ""; }
        if (severity) { severity.value = lane || ""; }
        return apply();
      },
      shown: function () { return shown.length; }
    };
  }

  var api = { tables: {} };
  Object.keys(TABLES).forEach(function (id) {
    if (document.getElementById(id) && TABLES[id].rows) { api.tables[id] = new Table(id, TABLES[id]); }
  });
  window.exchangePkiReport = api;
  if (window.performance && performance.mark) { performance.mark("exchange-pki-ready"); }
  document.documentElement.dataset.ready = "true";
}());
"""
