// Service page: draw the Plotly figures; clicking a point opens the trace list filtered to that bucket.
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  document.querySelectorAll(".chart[data-figure]").forEach((el) => {
    const fig = figures[el.dataset.figure];
    if (!fig || !fig.data.length) { el.classList.add("empty-chart"); el.textContent = "No data in this range."; return; }
    Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
    el.on("plotly_click", (event) => {
      const url = event.points && event.points[0] && event.points[0].customdata;
      if (url) window.location.href = url;
    });
  });
})();
