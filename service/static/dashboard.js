/* The LikeLoop dashboard: reads the API with a read key and draws everything here (no CDN).
 *
 * A time range picks the stats' since/until and their buckets (hours for a day, days beyond);
 * every chart and table but the recent comments and the exports' list follows it. A prompt or a
 * comment opens its prompt group (its responses with their feedback); the URL's #prompt=<id>
 * keeps that view linkable. */
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d"];
  var MAX_MODELS = 8;  // series drawn per chart; the models table lists them all
  var HOUR = 3600 * 1000, DAY = 24 * HOUR;
  var $ = function (id) { return document.getElementById(id); };
  var keyInput = $("key"), rangeInput = $("range"), message = $("message");

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  }

  function api(path) {
    return fetch(path, {headers: {"Authorization": "Bearer " + keyInput.value.trim()}}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error((body.error && body.error.message) || ("HTTP " + r.status)); }
        return body;
      });
    });
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== "") { parts.push(k + "=" + encodeURIComponent(params[k])); }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function pct(x) { return x == null ? "–" : (100 * x).toFixed(1) + "%"; }
  function num(x) { return x == null ? "–" : Number(x).toLocaleString("en-US"); }
  function bytes(n) {
    if (n == null) { return "–"; }
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function when(ts) { return ts ? new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") : ""; }
  function dayOf(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function hourOf(ms) { return new Date(ms).toISOString().slice(0, 13); }

  // ---- the time range ------------------------------------------------------------------------

  /* {since, until, by ("hour"|"day"), label, buckets: [keys from first to last]} */
  function timeRange(firstBucket) {
    var now = Date.now(), choice = rangeInput.value, r;
    if (choice === "24h") {
      r = {since: hourOf(now - 23 * HOUR), until: null, by: "hour", label: "last 24 hours"};
    } else if (choice === "custom") {
      var from = $("from").value, to = $("to").value;
      r = {since: from || null, until: to || null, by: "day", label: (from || "start") + " to " + (to || "today")};
    } else if (choice === "all") {
      r = {since: null, until: null, by: "day", label: "all time"};
    } else {
      var days = parseInt(choice, 10);
      r = {since: dayOf(now - (days - 1) * DAY), until: null, by: "day", label: "last " + days + " days"};
    }
    var step = r.by === "hour" ? HOUR : DAY, fmt = r.by === "hour" ? hourOf : dayOf;
    var start = r.since || firstBucket || fmt(now);
    var end = r.until ? Date.parse(r.until + "T00:00:00Z") : now;
    var t = Date.parse(r.by === "hour" ? start + ":00:00Z" : start.slice(0, 10) + "T00:00:00Z");
    r.buckets = [];
    for (; t <= end && r.buckets.length < 1000; t += step) { r.buckets.push(fmt(t)); }
    return r;
  }

  // ---- charts (SVG, drawn here) --------------------------------------------------------------

  var W = 560, H = 200, LEFT = 44, BOTTOM = 22, TOP = 8;

  function frame(id, label, axis, yMax, yFormat) {
    var x = function (i) { return LEFT + (axis.length < 2 ? (W - LEFT) / 2 : i * (W - LEFT - 8) / (axis.length - 1)); };
    var y = function (v) { return TOP + (1 - v / (yMax || 1)) * (H - TOP - BOTTOM); };
    var svg = "<svg id=\"" + id + "\" viewBox=\"0 0 " + W + " " + H + "\" width=\"100%\" role=\"img\" aria-label=\"" + esc(label) + "\">";
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var v = f * yMax;
      svg += "<line x1=\"" + LEFT + "\" x2=\"" + W + "\" y1=\"" + y(v) + "\" y2=\"" + y(v) + "\" stroke=\"#eee\"/>" +
             "<text x=\"2\" y=\"" + (y(v) + 4) + "\" font-size=\"10\" fill=\"#7a8190\">" + esc(yFormat(v)) + "</text>";
    });
    var every = Math.max(1, Math.ceil(axis.length / 8));
    axis.forEach(function (k, i) {
      if (i % every === 0) {
        var text = k.length > 10 ? k.slice(11) + "h" : k.slice(5);
        svg += "<text x=\"" + x(i) + "\" y=\"" + (H - 6) + "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#7a8190\">" + esc(text) + "</text>";
      }
    });
    return {svg: svg, x: x, y: y};
  }

  /* series: [{name, values: {bucket: number|null}}] as lines with a point per bucket that has a value */
  function lineChart(target, id, label, axis, series, yMax, yFormat) {
    var f = frame(id, label, axis, yMax, yFormat), svg = f.svg;
    series.forEach(function (s, n) {
      var color = COLORS[n % COLORS.length];
      var pts = [];
      axis.forEach(function (k, i) { if (s.values[k] != null) { pts.push([f.x(i), f.y(s.values[k]), k, s.values[k]]); } });
      if (pts.length > 1) {
        svg += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\" points=\"" +
               pts.map(function (p) { return p[0] + "," + p[1]; }).join(" ") + "\"/>";
      }
      pts.forEach(function (p) {
        svg += "<circle class=\"point\" data-model=\"" + esc(s.name) + "\" data-bucket=\"" + esc(p[2]) + "\" cx=\"" + p[0] +
               "\" cy=\"" + p[1] + "\" r=\"3\" fill=\"" + color + "\"><title>" + esc(s.name + " " + p[2] + ": " + yFormat(p[3])) + "</title></circle>";
      });
    });
    $(target).innerHTML = series.length ? svg + "</svg>" : "<p class=\"muted\">Nothing in this range.</p>";
    legend(target + "-legend", series.map(function (s) { return s.name; }));
  }

  /* groups of bars per bucket: series [{name, kind, values: {bucket: number}}] side by side */
  function barChart(target, id, label, axis, series) {
    var yMax = 1;
    series.forEach(function (s) { axis.forEach(function (k) { yMax = Math.max(yMax, s.values[k] || 0); }); });
    var f = frame(id, label, axis, yMax, function (v) { return Math.round(v); }), svg = f.svg;
    var slot = (W - LEFT - 8) / Math.max(axis.length, 1), width = Math.max(1, slot * 0.8 / series.length);
    axis.forEach(function (k, i) {
      series.forEach(function (s, n) {
        var v = s.values[k] || 0;
        if (!(v > 0)) { return; }  // pairs made are net of retractions: a bucket may be negative
        var x0 = (axis.length < 2 ? f.x(i) : LEFT + i * slot) - slot * 0.4 + n * width;
        svg += "<rect data-kind=\"" + esc(s.kind) + "\" data-bucket=\"" + esc(k) + "\" data-value=\"" + v + "\" x=\"" + x0 +
               "\" y=\"" + f.y(v) + "\" width=\"" + width + "\" height=\"" + (f.y(0) - f.y(v)) + "\" fill=\"" +
               COLORS[n % COLORS.length] + "\"><title>" + esc(s.name + " " + k + ": " + v) + "</title></rect>";
      });
    });
    $(target).innerHTML = svg + "</svg>";
    legend(target + "-legend", series.map(function (s) { return s.name; }));
  }

  function legend(id, names) {
    $(id).innerHTML = names.map(function (name, n) {
      return "<span><i class=\"swatch\" style=\"background:" + COLORS[n % COLORS.length] + "\"></i>" + esc(name) + "</span>";
    }).join("");
  }

  function table(id, head, rows) {
    $(id).innerHTML = rows.length
      ? "<tr>" + head.map(function (h) {
          var cls = h.charAt(0) === "#" ? " class=\"num\"" : "";
          return "<th" + cls + ">" + esc(h.replace(/^#/, "")) + "</th>";
        }).join("") + "</tr>" + rows.join("")
      : "<tr><td class=\"muted\">Nothing yet.</td></tr>";
  }

  // ---- sections ------------------------------------------------------------------------------

  function kpis(stats, range) {
    var t = stats.totals;
    var items = [["Responses", num(t.responses)], ["Likes", num(t.likes)], ["Dislikes", num(t.dislikes)],
                 ["Like rate", pct(t.like_rate)], ["Mean rating", t.mean_rating == null ? "–" : t.mean_rating],
                 ["Comments", num(t.comments)], ["Corrections", num(t.corrections)],
                 ["Comparisons", num(t.comparisons)], ["Rankings", num(t.rankings)], ["Pairs made", num(t.pairs)]];
    if (t.pairs_exported != null) { items.push(["Pairs exported", num(t.pairs_exported)]); }
    var j = stats.judge;
    if (j && j.calls) {
      items.push(["Judge verdicts", num(j.verdicts)]);
      items.push(["Judge agrees with people", j.agreement == null ? "–" : pct(j.agreement) + " of " + (j.agreed + j.disagreed)]);
    }
    $("kpis").innerHTML = items.map(function (kv) {
      return "<div class=\"kpi\"><b>" + esc(kv[1]) + "</b><span class=\"muted\">" + esc(kv[0]) + "</span></div>";
    }).join("");
    $("range-label").textContent = "(" + range.label + ", UTC)";
  }

  function perModel(stats, range) {
    var models = Object.keys(stats.by_model).sort(function (a, b) {
      return stats.by_model[b].responses - stats.by_model[a].responses || (a < b ? -1 : 1);
    });
    table("models", ["Model", "#Responses", "#Likes", "#Dislikes", "#Like rate", "#Mean rating"], models.map(function (m) {
      var c = stats.by_model[m];
      return "<tr><td>" + esc(m) + "</td><td class=\"num\">" + num(c.responses) + "</td><td class=\"num\">" + num(c.likes) +
             "</td><td class=\"num\">" + num(c.dislikes) + "</td><td class=\"num\">" + pct(c.like_rate) + "</td><td class=\"num\">" +
             (c.mean_rating == null ? "–" : c.mean_rating) + "</td></tr>";
    }));
    var shown = models.slice(0, MAX_MODELS);
    return Promise.all(shown.map(function (m) {
      return api("/v1/stats" + query({since: range.since, until: range.until, model: m, group_by: range.by})).then(function (s) {
        var rate = {}, volume = {};
        s.groups.forEach(function (g) { rate[g.key] = g.like_rate; volume[g.key] = g.responses; });
        return {name: m, rate: rate, volume: volume};
      });
    })).then(function (series) {
      var axis = range.buckets;
      lineChart("like-rate", "like-rate-chart", "Like rate per model", axis,
                series.map(function (s) { return {name: s.name, values: s.rate}; }), 1, pct);
      var top = 1;
      series.forEach(function (s) { Object.keys(s.volume).forEach(function (k) { top = Math.max(top, s.volume[k]); }); });
      lineChart("volume", "volume-chart", "Responses per model", axis,
                series.map(function (s) { return {name: s.name, values: s.volume}; }), top, function (v) { return Math.round(v); });
    });
  }

  function pairsOverTime(stats, exportsList, range) {
    var made = {}, exported = {};
    stats.groups.forEach(function (g) { if (g.pairs) { made[g.key] = g.pairs; } });
    var first = range.buckets[0], last = range.buckets[range.buckets.length - 1];
    exportsList.forEach(function (e) {
      // Incremental runs export what is new; a snapshot re-exports everything and is not counted.
      if (e.status !== "succeeded" || e.mode !== "incremental" || !e.finished_at || !e.pairs) { return; }
      var ms = e.finished_at * 1000, k = range.by === "hour" ? hourOf(ms) : dayOf(ms);
      if (k >= first && k <= last) { exported[k] = (exported[k] || 0) + e.pairs; }
    });
    barChart("pairs", "pairs-chart", "Pairs made and exported", range.buckets, [
      {name: "made (net)", kind: "made", values: made},
      {name: "exported (incremental runs)", kind: "exported", values: exported},
    ]);
  }

  function prompts(range) {
    return api("/v1/prompts" + query({limit: 10, since: range.since, until: range.until})).then(function (body) {
      table("prompts", ["Prompt", "#Dislikes", "#Like rate", "Comments"], body.prompts.map(function (p) {
        return "<tr><td><a class=\"link prompt-link\" data-group=\"" + esc(p.group_id) + "\">" + esc(p.prompt || "(no text)") +
               "</a></td><td class=\"num\">" + p.dislikes + "</td><td class=\"num\">" + pct(p.like_rate) +
               "</td><td class=\"muted\">" + p.sample_comments.map(esc).join("<br>") + "</td></tr>";
      }));
    });
  }

  function leaderboardTable(range) {
    return api("/v1/leaderboard" + query({since: range.since, until: range.until})).then(function (body) {
      table("leaderboard", ["#", "Model", "#Rating", "#95% interval", "#Wins", "#Losses", "#Ties"], body.models.map(function (m, i) {
        return "<tr><td>" + (i + 1) + "</td><td>" + esc(m.model) + "</td><td class=\"num\">" + m.rating.toFixed(0) +
               "</td><td class=\"num muted\">" + (m.ci95 ? m.ci95[0].toFixed(0) + "–" + m.ci95[1].toFixed(0) : "–") +
               "</td><td class=\"num\">" + num(m.wins) + "</td><td class=\"num\">" + num(m.losses) + "</td><td class=\"num\">" +
               num(m.ties) + "</td></tr>";
      }));
    });
  }

  // ---- quality: computed by the project's quality job; a 202 says to ask again later ----------

  var FIGURES = [
    ["pairs_by_source", "pairs", function (f) { return Object.keys(f.sources).map(function (k) { return k + " " + f.sources[k]; }).join(", "); }],
    ["groups", "prompt groups", null],
    ["voters", "people who voted or rated", function (f) { return num(f.votes) + " votes"; }],
    ["vote_agreement", "vote agreement", function (f) { return num(f.responses) + " responses with 2+ voters"; }],
    ["judge_human_agreement", "judge agrees with people", function (f) { return num(f.pairs) + " pairs"; }],
    ["judge_order_consistency", "judge holds when swapped", function (f) { return num(f.calls) + " calls"; }],
    ["length_bias", "chosen answer is the longer", function (f) { return "median ratio " + (f.median_length_ratio == null ? "–" : f.median_length_ratio); }],
    ["voter_concentration", "votes by the top 1% of voters", function (f) { return "top 10: " + pct(f.top_10_share); }],
    ["duplicate_prompts", "prompts with a near duplicate", function (f) { return num(f.near_duplicates) + " of " + num(f.groups) + " groups"; }],
    ["suspect_voters", "suspect voters", function (f) { return num(f.pairs_resting_on_them) + " pairs rest on them alone"; }],
  ];
  var SHARES = {vote_agreement: 1, judge_human_agreement: 1, judge_order_consistency: 1, length_bias: 1, voter_concentration: 1, duplicate_prompts: 1};
  var polls = [];  // timers of the quality job's results asked again; a new load cancels them

  /* Calls draw(body) with a ready result; while the job computes, shows "computing" in the table
   * (with the last result, if any) and asks again after Retry-After. */
  function whenReady(path, tableId, draw) {
    return api(path).then(function (body) {
      if (body.status === "ready") { return draw(body); }
      if (body.last) { draw(body.last); } else { $(tableId).innerHTML = ""; }
      $(tableId).insertAdjacentHTML("afterbegin", "<caption class=\"muted\">computing... (asked again in " + body.retry_after + " s)</caption>");
      if (!body.last) { $(tableId).setAttribute("data-state", "computing"); }
      polls.push(setTimeout(function () { whenReady(path, tableId, draw); }, body.retry_after * 1000));
    });
  }

  function quality(range) {
    return whenReady("/v1/quality" + query({since: range.since, until: range.until}), "quality", function (body) {
      table("quality", ["Figure", "#Value", "Rests on"], FIGURES.map(function (row) {
        var f = body.figures[row[0]] || {};
        var value = SHARES[row[0]] ? pct(f.value) : num(f.value);
        return "<tr data-figure=\"" + row[0] + "\"><td>" + esc(row[1]) + "</td><td class=\"num\">" + value +
               "</td><td class=\"muted\">" + esc(row[2] ? row[2](f) : "") + "</td></tr>";
      }));
      $("quality").setAttribute("data-state", "ready");
    });
  }

  function voters() {
    return whenReady("/v1/voters?suspect=true&limit=20", "voters", function (body) {
      var rows = body.voters.map(function (v) {
        return "<tr><td>" + esc(v.user_id) + "</td><td>" + esc(v.rules.join(", ")) + "</td><td class=\"num\">" + num(v.likes) +
               "</td><td class=\"num\">" + num(v.dislikes) + "</td><td class=\"num\">" + num(v.most_in_a_minute) + "</td></tr>";
      });
      if (!rows.length) { rows = ["<tr><td colspan=\"5\" class=\"muted\">none found</td></tr>"]; }
      table("voters", ["Voter", "Rules", "#Likes", "#Dislikes", "#Most in a minute"], rows);
      $("voters").setAttribute("data-state", "ready");
    });
  }

  function comments() {
    return api("/v1/comments?limit=15").then(function (body) {
      table("comments", ["Comment", "Response", "When"], body.comments.map(function (c) {
        return "<tr><td>" + esc(c.text) + "</td><td><a class=\"link response-link\" data-response=\"" + esc(c.response_id) + "\">" +
               esc(c.response_id) + "</a></td><td class=\"muted\">" + esc(when(parseFloat(c.ts))) + "</td></tr>";
      }));
    });
  }

  function exportsTable(list) {
    table("exports", ["Export", "Mode", "Status", "Finished", "#Pairs", "#KTO", "#Retracted", "#Objects", "#Size", "Manifest"],
      list.slice(0, 20).map(function (e) {
        return "<tr><td>" + esc(e.id) + "</td><td>" + esc(e.mode) + "</td><td>" + esc(e.status) + "</td><td class=\"muted\">" +
               esc(when(e.finished_at)) + "</td><td class=\"num\">" + num(e.pairs) + "</td><td class=\"num\">" + num(e.kto) +
               "</td><td class=\"num\">" + num(e.retractions) + "</td><td class=\"num\">" + num(e.files) + "</td><td class=\"num\">" +
               bytes(e.bytes) + "</td><td class=\"muted\"><code>" + esc(e.manifest || e.error || "") + "</code></td></tr>";
      }));
  }

  function pipeline() {
    return api("/v1/pipeline").then(function (body) {
      table("pipeline", ["", ""], [
        "<tr><td>pairing workers</td><td>" + (body.pairing_workers ? body.pairing_workers : "none running") + "</td></tr>",
        "<tr><td>groups waiting for pairing</td><td>" + body.dirty_groups +
          (body.oldest_dirty_s == null ? "" : " (oldest " + body.oldest_dirty_s.toFixed(1) + " s)") + "</td></tr>",
        "<tr><td>pairing job</td><td>" + (body.pairing_job_queued ? "queued" : "idle") + "</td></tr>",
      ]);
    });
  }

  function showGroup(groupId) {
    history.replaceState(null, "", "#prompt=" + encodeURIComponent(groupId));
    $("group").innerHTML = "<p class=\"muted\">Loading...</p>";
    return api("/v1/prompts/" + encodeURIComponent(groupId)).then(function (g) {
      $("group-title").textContent = g.response_count + " responses";
      var head = "<p><b>" + esc(g.prompt || "(no text)") + "</b></p>" + (g.system ? "<p class=\"muted\">system: " + esc(g.system) + "</p>" : "");
      $("group").innerHTML = head + g.responses.map(function (r) {
        var ratings = r.ratings.map(function (x) { return x.value + "/" + x.scale; }).join(", ");
        return "<div class=\"response\" data-response=\"" + esc(r.response_id) + "\"><span class=\"tag\">" + esc(r.model || "no model") +
               "</span><span class=\"good\">+" + r.likes + "</span> <span class=\"bad\">-" + r.dislikes + "</span>" +
               (ratings ? " <span class=\"muted\">ratings " + esc(ratings) + "</span>" : "") +
               " <span class=\"muted\">" + esc(when(r.timestamp)) + " · " + esc(r.response_id) + "</span>" +
               "<pre>" + esc(r.response) + "</pre>" +
               (r.correction ? "<p><span class=\"tag\">correction</span>" + esc(r.correction) + "</p>" : "") +
               r.comments.map(function (c) { return "<p class=\"muted\">“" + esc(c.text) + "”</p>"; }).join("") + "</div>";
      }).join("");
      $("group-section").scrollIntoView({block: "nearest"});
    }, function (err) {
      $("group").innerHTML = "<p class=\"error\">" + esc(err.message) + "</p>";
    });
  }

  function showResponse(responseId) {
    return api("/v1/responses/" + encodeURIComponent(responseId)).then(function (r) { return showGroup(r.group_id); });
  }

  function load() {
    localStorage.setItem("likeloop.key", keyInput.value.trim());
    localStorage.setItem("likeloop.range", rangeInput.value);
    message.textContent = "Loading...";
    var range = timeRange(null);
    Promise.all([
      api("/v1/stats" + query({since: range.since, until: range.until, group_by: range.by})),
      api("/v1/exports?limit=500"),
    ]).then(function (got) {
      var stats = got[0], exportsList = got[1].exports;
      if (!range.since && stats.groups.length) { range = timeRange(stats.groups[0].key); }
      kpis(stats, range);
      pairsOverTime(stats, exportsList, range);
      exportsTable(exportsList);
      polls.forEach(clearTimeout);
      polls = [];
      return Promise.all([perModel(stats, range), leaderboardTable(range), prompts(range), comments(), pipeline(),
                          quality(range), voters()]);
    }).then(function () {
      message.textContent = "";
      $("board").hidden = false;
      document.body.setAttribute("data-loaded", "true");
      var linked = /#prompt=([0-9a-f]{32})/.exec(location.hash);
      if (linked) { return showGroup(linked[1]); }
    }).catch(function (err) {
      message.innerHTML = "<span class=\"error\">" + esc(err.message) + "</span>";
    });
  }

  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a.link");
    if (!link) { return; }
    if (link.dataset.group) { showGroup(link.dataset.group); }
    if (link.dataset.response) { showResponse(link.dataset.response); }
  });
  rangeInput.addEventListener("change", function () {
    $("custom").hidden = rangeInput.value !== "custom";
    if (keyInput.value.trim() && rangeInput.value !== "custom") { load(); }
  });
  $("load").addEventListener("click", load);
  keyInput.addEventListener("keydown", function (e) { if (e.key === "Enter") { load(); } });
  var saved = localStorage.getItem("likeloop.key");
  var savedRange = localStorage.getItem("likeloop.range");
  if (savedRange) { rangeInput.value = savedRange; $("custom").hidden = savedRange !== "custom"; }
  if (saved) { keyInput.value = saved; load(); }
})();
