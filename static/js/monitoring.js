/* Monitoring dashboard charts (Chart.js, self-hosted).
 *
 * The data comes from <script type="application/json" id="monitoring-chart-data">,
 * written by Django's json_script inside the htmx-refreshed panels. After each
 * swap the charts are updated in place from the new JSON (no re-creation, so
 * the page does not flicker).
 */
(function () {
  "use strict";
  var charts = {};
  var SERIES = [
    // "order": lower is drawn later (on top); segmented usually equals analysed, so it is
    // dashed and drawn over it, and both stay visible.
    { key: "analysed", label: "analysed (classification + CAM)", color: "#6a3d9a", order: 2 },
    { key: "segmented", label: "segmented", color: "#1f7a4d", dash: [6, 4], order: 1 },
    { key: "failed", label: "failed", color: "#b3261e", order: 0 }
  ];

  function readData() {
    var node = document.getElementById("monitoring-chart-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function timeLabel(iso) {
    var d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function throughputConfig(data) {
    return {
      type: "line",
      data: {
        labels: data.throughput.labels.map(timeLabel),
        datasets: SERIES.map(function (s) {
          return {
            label: s.label, data: data.throughput.series[s.key] || [], borderColor: s.color,
            backgroundColor: s.color + "22", fill: s.key === "analysed", tension: 0.25,
            pointRadius: 0, borderWidth: 2, borderDash: s.dash || [], order: s.order
          };
        })
      },
      options: {
        animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "images / minute" } },
          x: { ticks: { maxTicksLimit: 12, autoSkip: true } }
        },
        plugins: { legend: { position: "bottom", reverse: true } }
      }
    };
  }

  function stageConfig(data) {
    return {
      type: "bar",
      data: {
        labels: data.stages.map(function (s) { return s.label; }),
        datasets: [
          { label: "p50 (s)", data: data.stages.map(function (s) { return s.p50; }), backgroundColor: "#6a3d9a" },
          { label: "p95 (s)", data: data.stages.map(function (s) { return s.p95; }), backgroundColor: "#c9b3e0" }
        ]
      },
      options: {
        animation: false, maintainAspectRatio: false, indexAxis: "y",
        scales: { x: { beginAtZero: true, title: { display: true, text: "seconds per image" } } },
        plugins: { legend: { position: "bottom" } }
      }
    };
  }

  function draw() {
    var data = readData();
    if (!data || typeof Chart === "undefined") { return; }
    var configs = { "throughput-chart": throughputConfig(data), "stage-chart": stageConfig(data) };
    Object.keys(configs).forEach(function (id) {
      var canvas = document.getElementById(id);
      if (!canvas) { return; }
      if (charts[id]) {
        charts[id].data = configs[id].data;
        charts[id].update("none");
      } else {
        charts[id] = new Chart(canvas, configs[id]);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
