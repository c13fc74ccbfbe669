// Draws the page's charts with uPlot from the JSON the server rendered; no network, no framework.
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const COLORS = { events: "#4338ca", accepted: "#4338ca", duplicate: "#64748b", invalid: "#dc2626",
                   rate_limited: "#d97706", over_quota: "#b45309", dnt: "#0891b2" };
  const LABELS = { accepted: "Accepted", duplicate: "Duplicate", invalid: "Invalid", rate_limited: "Rate limited",
                   over_quota: "Over quota", dnt: "Do not track" };

  const zoneElement = document.getElementById("time-zone");
  const zone = zoneElement ? JSON.parse(zoneElement.textContent) : "UTC";
  // Axes and legends in the user's time zone (a preference), not the browser's.
  const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), zone);

  function width(el) { return Math.max(280, el.clientWidth); }

  // Alert transitions in the chart's range, [{t, type: "firing" | "resolved", rule}], as vertical lines
  // over the plot: red and solid where a rule fired, green and dashed where it resolved. Each is drawn
  // on the bucket it falls in, so one in the bucket still being counted shows at the chart's edge.
  const MARKS = { firing: { color: "#b91c1c", dash: [] }, resolved: { color: "#15803d", dash: [5, 4] } };
  const marks = {
    hooks: { draw: [(u) => {
      const ctx = u.ctx, { left, top, width: w, height: h } = u.bbox;
      ctx.save();
      ctx.lineWidth = 2 * uPlot.pxRatio;
      (data.marks || []).forEach((mark) => {
        const bucket = u.data[0].filter((start) => start <= mark.t).pop();
        if (bucket == null) return;
        const x = Math.round(u.valToPos(bucket, "x", true));
        if (x < left || x > left + w) return;
        ctx.strokeStyle = MARKS[mark.type].color;
        ctx.setLineDash(MARKS[mark.type].dash.map((d) => d * uPlot.pxRatio));
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + h);
        ctx.stroke();
      });
      ctx.restore();
    }] },
  };

  // A count axis as wide as its longest label: "1,500,000" does not fit the 60 px of "1,500".
  const fitted = (u, values) => Math.max(60, 16 + 8 * Math.max(0, ...(values || []).map((v) => String(v).length)));

  function draw(el, opts, series) {
    if (!el) return;
    const plot = new uPlot({ width: width(el), height: 240, tzDate, plugins: [marks], ...opts }, series, el);
    new ResizeObserver(() => plot.setSize({ width: width(el), height: 240 })).observe(el);
  }

  if (data.events) draw(document.getElementById("events-chart"), {
    series: [{}, { label: "Events", stroke: COLORS.events, fill: "rgba(67, 56, 202, 0.12)", width: 2 }],
    axes: [{}, { size: fitted }],
  }, [data.events.x, data.events.y]);

  // Line charts the server describes whole: [{id, x, unit, digits, series: [{label, color, values}]}];
  // a null value (a bucket with nothing to measure) leaves a gap.
  (data.lines || []).forEach((chart) => draw(document.getElementById(chart.id), {
    series: [{}, ...chart.series.map((s) => ({ label: s.label, stroke: s.color, width: 2,
      value: (u, v) => (v == null ? "–" : v.toFixed(chart.digits) + chart.unit) }))],
    axes: [{}, { size: 70, values: (u, ticks) => ticks.map((t) => t + chart.unit) }],
  }, [chart.x, ...chart.series.map((s) => s.values)]));

  // Users and versions are counted per UTC day: their axes say the UTC date, not a local hour.
  const utcDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const days = { tzDate: utcDate, axes: [{ space: 60 }, { size: fitted }] };

  if (data.users) draw(document.getElementById("users-chart"), {
    ...days,
    series: [{ value: "{YYYY}-{MM}-{DD}" },
      { label: "Users", stroke: "#4338ca", fill: "rgba(67, 56, 202, 0.12)", width: 2 },
      { label: "New users", stroke: "#0891b2", width: 2, dash: [6, 4] }],
  }, [data.users.x, data.users.users, data.users.new_users]);

  // Versions' shares of each day's users, stacked to 100%: each band is drawn as the running
  // total of itself and those before it; the legend gives the version's own share and users.
  if (data.shares) {
    const shares = data.shares.series;
    const PALETTE = ["#4338ca", "#0891b2", "#d97706", "#15803d", "#db2777", "#7c3aed", "#94a3b8"];
    const running = data.shares.x.map(() => 0);
    const stacked = shares.map((s) => s.share.map((v, i) => (v == null ? null : (running[i] += v))));
    draw(document.getElementById("shares-chart"), {
      ...days,
      scales: { y: { range: [0, 100] } },
      series: [{ value: "{YYYY}-{MM}-{DD}" }, ...shares.map((s, i) => ({
        label: s.label, stroke: PALETTE[i % PALETTE.length], fill: i === 0 ? PALETTE[0] + "66" : undefined,
        value: (u, v, si, idx) => (idx == null || s.share[idx] == null ? "–"
          : s.share[idx].toFixed(1) + "% (" + s.users[idx] + ")") }))],
      bands: shares.slice(1).map((s, i) => ({ series: [i + 2, i + 1], fill: PALETTE[(i + 1) % PALETTE.length] + "66" })),
      axes: [{ space: 60 }, { size: 60, values: (u, ticks) => ticks.map((t) => t + "%") }],
    }, [data.shares.x, ...stacked]);
  }

  if (!data.outcomes) return;
  // Stacked: each series is drawn as the running total of itself and those before it.
  const kinds = Object.keys(data.outcomes.series);
  const running = data.outcomes.x.map(() => 0);
  const stacked = kinds.map((kind) => data.outcomes.series[kind].map((v, i) => (running[i] += v)));
  // The first kind fills down to zero, each next one only the band between it and the one below.
  draw(document.getElementById("outcomes-chart"), {
    series: [{}, ...kinds.map((kind, i) => ({ label: LABELS[kind], stroke: COLORS[kind],
      fill: i === 0 ? COLORS[kind] + "55" : undefined,
      value: (u, v, s, idx) => (idx == null ? "–" : data.outcomes.series[kind][idx]) }))],
    bands: kinds.slice(1).map((kind, i) => ({ series: [i + 2, i + 1], fill: COLORS[kind] + "55" })),
    axes: [{}, { size: fitted }],
  }, [data.outcomes.x, ...stacked]);
})();
