// Rescore page: live progress of running jobs, polled every two seconds until they finish.
(function () {
  function poll(row) {
    fetch(row.dataset.progressUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((p) => {
        row.querySelector(".progress > span").style.width = p.percent + "%";
        row.querySelector(".progress").setAttribute("aria-valuenow", p.percent);
        row.querySelector(".count").textContent = p.done + " / " + p.total;
        row.querySelector(".status-cell").textContent = p.status + (p.error ? " " + p.error : "");
        if (["done", "cancelled", "failed"].includes(p.status)) {
          const cancel = row.querySelector("form");
          if (cancel) cancel.remove();
        } else {
          setTimeout(() => poll(row), 2000);
        }
      })
      .catch(() => setTimeout(() => poll(row), 5000));
  }
  document.querySelectorAll("tr[data-live]").forEach(poll);
})();
