// The Lambda panel's charts, drawn with uPlot from the JSON the server rendered (as charts.js does).
(function () {
  const data = JSON.parse(document.getElementById("lambda-data").textContent);
  const zoneElement = document.getElementById("time-zone");
  const zone = zoneElement ? JSON.parse(zoneElement.textContent) : "UTC";
  const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), zone);
  const width = (el) => Math.max(280, el.clientWidth);
  const ms = (u, v) => (v == null ? "–" : v.toFixed(0) + " ms");

  function draw(el, opts, series) {
    if (!el) return;
    const plot = new uPlot({ width: width(el), height: 240, tzDate, ...opts }, series, el);
    new ResizeObserver(() => plot.setSize({ width: width(el), height: 240 })).observe(el);
  }

  draw(document.getElementById("invocations-chart"), {
    series: [{},
      { label: "Invocations", stroke: "#4338ca", fill: "rgba(67, 56, 202, 0.12)", width: 2 },
      { label: "Errors", stroke: "#dc2626", width: 2 },
      { label: "Cold starts", stroke: "#0891b2", width: 2, dash: [6, 4] }],
    axes: [{}, { size: 60 }],
  }, [data.x, data.invocations, data.errors, data.cold_starts]);

  draw(document.getElementById("duration-chart"), {
    series: [{},
      { label: "p50", stroke: "#4338ca", width: 2, value: ms },
      { label: "p95", stroke: "#d97706", width: 2, value: ms },
      { label: "p99", stroke: "#dc2626", width: 2, value: ms }],
    axes: [{}, { size: 70, values: (u, ticks) => ticks.map((v) => v + " ms") }],
  }, [data.x, data.p50, data.p95, data.p99]);
})();
