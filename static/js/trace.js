// Trace page: clicking a waterfall row shows that span's panel; arrow keys move between spans.
// Opens the span named in the URL (#span-<id>), else the first failing span (named in the error list above
// the waterfall), else the root.
(function () {
  const box = document.querySelector(".waterfall");
  const rows = Array.from(document.querySelectorAll(".wf-row"));
  if (!box || !rows.length) return;
  const head = box.querySelector(".wf-head");

  // Bring a row into view inside the (sticky, scrolling) waterfall without scrolling the page.
  function reveal(row) {
    if (getComputedStyle(box).position !== "sticky") return;
    const top = row.offsetTop - (head ? head.offsetHeight : 0);
    const bottom = row.offsetTop + row.offsetHeight;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (bottom > box.scrollTop + box.clientHeight) box.scrollTop = bottom - box.clientHeight;
  }

  function select(row, remember, scroll) {
    rows.forEach((r) => {
      r.classList.toggle("selected", r === row);
      r.setAttribute("aria-pressed", r === row ? "true" : "false");
    });
    document.querySelectorAll(".span-panel").forEach((p) => { p.hidden = p.id !== "span-" + row.dataset.span; });
    if (remember) history.replaceState(null, "", "#span-" + row.dataset.span);
    if (scroll) reveal(row);
  }

  function bySpan(id) { return rows.find((r) => r.dataset.span === id); }

  rows.forEach((row) => row.addEventListener("click", () => select(row, true)));
  document.querySelectorAll(".error-list a[data-span]").forEach((a) => a.addEventListener("click", (e) => {
    const row = bySpan(a.dataset.span);
    if (row) { e.preventDefault(); select(row, true, true); }
  }));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    if (e.target.closest && e.target.closest("input, select, textarea, pre, details")) return;
    const i = rows.findIndex((r) => r.classList.contains("selected"));
    const next = rows[i + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) { e.preventDefault(); select(next, true, true); next.focus({ preventScroll: true }); }
  });

  const wanted = location.hash.startsWith("#span-") && bySpan(location.hash.slice("#span-".length));
  const failing = rows.find((r) => r.classList.contains("is-error"));
  if (wanted) select(wanted, false, true);
  else if (failing) select(failing, false);
})();
