// Drift page: overlaid distributions per signal.
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  document.querySelectorAll(".drift-chart[data-figure]").forEach((el) => {
    const fig = figures[el.dataset.figure];
    if (!fig) { el.remove(); return; }
    Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
  });
})();
