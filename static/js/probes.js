// Probe pages: show only the fields of the chosen target; draw the run history; follow running runs and reload
// the page when one finishes, so its results appear.
(function () {
  document.querySelectorAll("form.probe-form").forEach((form) => {
    const select = form.querySelector("select[name=target_kind]");
    const sync = () => form.querySelectorAll("fieldset[data-target]").forEach((set) => {
      set.hidden = set.dataset.target !== select.value;
    });
    select.addEventListener("change", sync);
    sync();
  });

  const data = document.getElementById("figures");
  if (data && window.Plotly) {
    const figures = JSON.parse(data.textContent);
    document.querySelectorAll(".chart[data-figure]").forEach((el) => {
      const fig = figures[el.dataset.figure];
      if (fig) Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true });
    });
  }

  function poll(row) {
    fetch(row.dataset.progressUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((p) => {
        row.querySelector(".progress > span").style.width = p.percent + "%";
        row.querySelector(".progress").setAttribute("aria-valuenow", p.percent);
        row.querySelector(".count").textContent = p.done + " / " + p.total;
        row.querySelector(".status-cell").textContent = p.status + (p.error ? " " + p.error : "");
        if (["done", "cancelled", "failed"].includes(p.status)) location.reload();
        else setTimeout(() => poll(row), 1500);
      })
      .catch(() => setTimeout(() => poll(row), 5000));
  }
  document.querySelectorAll("tr[data-live]").forEach(poll);
})();
