// Trace list: the count, asked for once the rows are shown; the column picker saves on each change (then reloads
// the list with those columns), row selection for the bulk actions, and a click on a preview unfolds it to the
// full text.
(function () {
  const count = document.getElementById("trace-count");
  if (count && count.dataset.countUrl) {
    count.textContent = "counting…";
    fetch(count.dataset.countUrl, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) { count.innerHTML = html; })  // the server's fragment: a number and fixed words
      .catch(function () { count.textContent = ""; });
  }

  const picker = document.getElementById("columns");
  if (picker) {
    picker.querySelector("button[type=submit]").hidden = true;
    picker.addEventListener("change", function () {
      fetch(picker.action, {
        method: "POST",
        body: new FormData(picker),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      }).then(function (response) {
        if (response.ok) location.reload();
      });
    });
  }

  const bulk = document.getElementById("bulk");
  const boxes = Array.from(document.querySelectorAll('input[name="trace"][form="bulk"]'));
  const all = document.getElementById("pick-all");
  function update() {
    const picked = boxes.filter(function (b) { return b.checked; }).length;
    document.getElementById("selected-count").textContent = String(picked);
    bulk.classList.toggle("has-selection", picked > 0);
    bulk.querySelectorAll("button").forEach(function (b) { b.disabled = picked === 0; });
    if (all) {
      all.checked = picked > 0 && picked === boxes.length;
      all.indeterminate = picked > 0 && picked < boxes.length;
    }
    boxes.forEach(function (b) { b.closest("tr").classList.toggle("picked", b.checked); });
  }
  if (bulk) {
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    if (all) all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    update();
  }

  document.querySelectorAll("table.traces td.io").forEach(function (cell) {
    function toggle() { cell.classList.toggle("expanded"); }
    cell.addEventListener("click", toggle);
    cell.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
    });
  });
})();
