/* The LikeLoop dashboard: reads the API with a read key and draws everything here (no CDN). */
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d"];
  var keyInput = document.getElementById("key");
  var message = document.getElementById("message");

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c];
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

  function pct(x) { return x == null ? "–" : (100 * x).toFixed(1) + "%"; }

  function kpis(stats) {
    var t = stats.totals;
    var items = [["Responses", t.responses], ["Likes", t.likes], ["Dislikes", t.dislikes],
                 ["Like rate", pct(t.like_rate)], ["Mean rating", t.mean_rating == null ? "–" : t.mean_rating],
                 ["Comments", t.comments], ["Corrections", t.corrections], ["Pairs", t.pairs],
                 ["Pairs exported", t.pairs_exported]];
    document.getElementById("kpis").innerHTML = items.map(function (kv) {
      return "<div class=\"kpi\"><b>" + esc(kv[1]) + "</b><span class=\"muted\">" + esc(kv[0]) + "</span></div>";
    }).join("");
  }

  function chart(series) {
    // series: [{model, points: [{day, like_rate}]}]
    var days = {};
    series.forEach(function (s) { s.points.forEach(function (p) { days[p.key] = true; }); });
    var axis = Object.keys(days).sort();
    var w = 760, h = 220, left = 40, bottom = 24, top = 10;
    var x = function (i) { return left + (axis.length < 2 ? (w - left) / 2 : i * (w - left - 10) / (axis.length - 1)); };
    var y = function (v) { return top + (1 - v) * (h - top - bottom); };
    var svg = "<svg id=\"like-rate-chart\" viewBox=\"0 0 " + w + " " + h + "\" width=\"100%\" role=\"img\" aria-label=\"Like rate by day per model\">";
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      svg += "<line x1=\"" + left + "\" x2=\"" + w + "\" y1=\"" + y(v) + "\" y2=\"" + y(v) + "\" stroke=\"#eee\"/>" +
             "<text x=\"2\" y=\"" + (y(v) + 4) + "\" font-size=\"10\" fill=\"#7a8190\">" + (v * 100) + "%</text>";
    });
    axis.forEach(function (d, i) {
      if (axis.length <= 10 || i % Math.ceil(axis.length / 10) === 0) {
        svg += "<text x=\"" + x(i) + "\" y=\"" + (h - 6) + "\" font-size=\"10\" text-anchor=\"middle\" fill=\"#7a8190\">" + esc(d.slice(5)) + "</text>";
      }
    });
    series.forEach(function (s, n) {
      var color = COLORS[n % COLORS.length];
      var pts = s.points.filter(function (p) { return p.like_rate != null; }).map(function (p) {
        return [x(axis.indexOf(p.key)), y(p.like_rate)];
      });
      if (pts.length > 1) {
        svg += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\" points=\"" + pts.map(function (p) { return p.join(","); }).join(" ") + "\"/>";
      }
      pts.forEach(function (p) {
        svg += "<circle class=\"point\" data-model=\"" + esc(s.model) + "\" cx=\"" + p[0] + "\" cy=\"" + p[1] + "\" r=\"3.5\" fill=\"" + color + "\"/>";
      });
    });
    svg += "</svg>";
    document.getElementById("chart").innerHTML = axis.length ? svg : "<p class=\"muted\">No votes yet.</p>";
    document.getElementById("legend").innerHTML = series.map(function (s, n) {
      return "<span><i class=\"swatch\" style=\"background:" + COLORS[n % COLORS.length] + "\"></i>" + esc(s.model) + "</span>";
    }).join("");
  }

  function table(id, head, rows) {
    document.getElementById(id).innerHTML = rows.length
      ? "<tr>" + head.map(function (h) { return "<th>" + esc(h) + "</th>"; }).join("") + "</tr>" + rows.join("")
      : "<tr><td class=\"muted\">Nothing yet.</td></tr>";
  }

  function load() {
    localStorage.setItem("likeloop.key", keyInput.value.trim());
    message.textContent = "Loading...";
    api("/v1/stats").then(function (stats) {
      kpis(stats);
      var models = Object.keys(stats.by_model);
      return Promise.all(models.map(function (m) {
        return api("/v1/stats?group_by=day&model=" + encodeURIComponent(m)).then(function (s) {
          return {model: m, points: s.groups};
        });
      })).then(chart);
    }).then(function () {
      return Promise.all([
        api("/v1/prompts?limit=10").then(function (body) {
          table("prompts", ["Prompt", "Dislikes", "Like rate", "Comments"], body.prompts.map(function (p) {
            return "<tr><td>" + esc(p.prompt) + "</td><td>" + p.dislikes + "</td><td>" + pct(p.like_rate) +
                   "</td><td class=\"muted\">" + p.sample_comments.map(esc).join("<br>") + "</td></tr>";
          }));
        }),
        api("/v1/comments?limit=15").then(function (body) {
          table("comments", ["Comment", "Response", "When"], body.comments.map(function (c) {
            return "<tr><td>" + esc(c.text) + "</td><td class=\"muted\">" + esc(c.response_id) + "</td><td class=\"muted\">" +
                   esc(new Date(parseFloat(c.ts) * 1000).toISOString().slice(0, 16).replace("T", " ")) + "</td></tr>";
          }));
        }),
        api("/v1/exports?limit=10").then(function (body) {
          table("exports", ["Export", "Mode", "Status", "Pairs", "Manifest"], body.exports.map(function (e) {
            return "<tr><td>" + esc(e.id) + "</td><td>" + esc(e.mode) + "</td><td>" + esc(e.status) + "</td><td>" +
                   esc(e.pairs == null ? "" : e.pairs) + "</td><td class=\"muted\">" + esc(e.manifest || e.error || "") + "</td></tr>";
          }));
        }),
        api("/v1/pipeline").then(function (body) {
          var rows = [
            "<tr><td>pairing workers</td><td>" + (body.pairing_workers ? body.pairing_workers : "none running") + "</td></tr>",
            "<tr><td>groups waiting for pairing</td><td>" + body.dirty_groups +
              (body.oldest_dirty_s == null ? "" : " (oldest " + body.oldest_dirty_s.toFixed(1) + " s)") + "</td></tr>",
            "<tr><td>pairing job</td><td>" + (body.pairing_job_queued ? "queued" : "idle") + "</td></tr>",
          ];
          table("pipeline", ["", ""], rows);
        }),
      ]);
    }).then(function () {
      message.textContent = "";
      document.getElementById("board").hidden = false;
      document.body.setAttribute("data-loaded", "true");
    }, function (err) {
      message.innerHTML = "<span class=\"error\">" + esc(err.message) + "</span>";
    });
  }

  document.getElementById("load").addEventListener("click", load);
  keyInput.addEventListener("keydown", function (e) { if (e.key === "Enter") { load(); } });
  var saved = localStorage.getItem("likeloop.key");
  if (saved) { keyInput.value = saved; load(); }
})();
