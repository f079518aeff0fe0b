// Drift page: overlaid distributions per signal. The statistics sit in closed <details>: a chart is drawn when
// its details opens (Plotly cannot size a plot that is not displayed).
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  function draw(el) {
    if (el.dataset.drawn || !el.offsetParent) return;
    const fig = figures[el.dataset.figure];
    if (!fig) { el.remove(); return; }
    el.dataset.drawn = "1";
    Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
  }
  const drawVisible = () => document.querySelectorAll(".drift-chart[data-figure]").forEach(draw);
  document.querySelectorAll("details").forEach((d) => d.addEventListener("toggle", drawVisible));
  // A link to one signal's statistics (#signal-N) opens the details around it.
  const target = location.hash.startsWith("#signal-") && document.getElementById(location.hash.slice(1));
  if (target) {
    for (let d = target.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
    target.scrollIntoView();
  }
  drawVisible();
})();
