// Time-series pages (service, SLO): draw the Plotly figures; clicking a point opens the trace list filtered to that
// bucket; dragging across a time chart picks a time range. Where the page can re-render any range
// (data-zoom="reload": the service page) the range becomes the page's since/until; otherwise (data-zoom="sync":
// the SLO page, whose ranges are fixed) every chart zooms to it. Either way the links marked data-range-link
// (trace lists) carry the range. A page opened with a range (data-since/data-until on the charts) starts zoomed to it.
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  const box = document.querySelector(".charts[data-zoom]");
  const charts = [];
  // Plotly reports date-axis ranges as UTC wall time without a zone ("2026-12-06 13:45:12.3"): read them as UTC.
  const utc = (x) => new Date(String(x).replace(" ", "T") + (/[zZ+]|-\d\d:\d\d$/.test(String(x)) ? "" : "Z"));

  function withRange(href, since, until) {
    const url = new URL(href, location.href);
    url.searchParams.set("since", since.toISOString());
    url.searchParams.set("until", until.toISOString());
    return url.pathname + url.search;
  }

  function applyRange(source, since, until) {
    document.querySelectorAll("a[data-range-link]").forEach((a) => { a.href = withRange(a.href, since, until); });
    if (box.dataset.zoom === "reload") {
      const url = new URL(location.href);
      url.searchParams.set("range", "custom");
      url.searchParams.set("since", since.toISOString());
      url.searchParams.set("until", until.toISOString());
      location.href = url.toString();
      return;
    }
    charts.filter((el) => el !== source).forEach((el) => {
      Plotly.relayout(el, { "xaxis.range": [since.toISOString(), until.toISOString()] });
    });
  }

  document.querySelectorAll(".chart[data-figure]").forEach((el) => {
    const fig = figures[el.dataset.figure];
    if (!fig || !fig.data.length) { el.classList.add("empty-chart"); el.textContent = "No data in this range."; return; }
    Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
    el.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      const link = point && point.data.meta;
      if (!link) return;
      const since = utc(point.x);
      const until = new Date(since.getTime() + link.step_s * 1000);
      window.location.href = withRange(link.href, since, until);
    });
    if (!box || fig.layout.xaxis.type !== "date") return;
    charts.push(el);
    el.on("plotly_relayout", (change) => {
      const start = change["xaxis.range[0]"], end = change["xaxis.range[1]"];
      if (start === undefined || end === undefined || el.dataset.syncing) return;
      el.dataset.syncing = "1";  // relayout of the others fires their own events: do not bounce back
      try { applyRange(el, utc(start), utc(end)); } finally { delete el.dataset.syncing; }
    });
  });
  // Opened with a range to show (a link from an incident: data-since/data-until): zoom every chart to it.
  if (box && box.dataset.since && box.dataset.until && charts.length) {
    applyRange(null, new Date(box.dataset.since), new Date(box.dataset.until));
  }
})();
