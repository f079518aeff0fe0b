// Service page: draw the Plotly figures; clicking a point opens the trace list filtered to that bucket.
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  document.querySelectorAll(".chart[data-figure]").forEach((el) => {
    const fig = figures[el.dataset.figure];
    if (!fig || !fig.data.length) { el.classList.add("empty-chart"); el.textContent = "No data in this range."; return; }
    Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
    el.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      const link = point && point.data.meta;
      if (!link) return;
      const since = new Date(point.x.replace(" ", "T") + (/[zZ+]|-\d\d:\d\d$/.test(point.x) ? "" : "Z"));
      const until = new Date(since.getTime() + link.step_s * 1000);
      const sep = link.href.includes("?") ? "&" : "?";
      window.location.href = link.href + sep + "since=" + encodeURIComponent(since.toISOString()) +
        "&until=" + encodeURIComponent(until.toISOString());
    });
  });
})();
