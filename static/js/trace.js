// Trace page: clicking a waterfall row shows that span's panel. Arrow keys move between spans.
(function () {
  const rows = Array.from(document.querySelectorAll(".wf-row"));
  function select(row) {
    rows.forEach((r) => r.classList.toggle("selected", r === row));
    document.querySelectorAll(".span-panel").forEach((p) => { p.hidden = p.id !== "span-" + row.dataset.span; });
    history.replaceState(null, "", "#span-" + row.dataset.span);
  }
  rows.forEach((row) => row.addEventListener("click", () => select(row)));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const i = rows.findIndex((r) => r.classList.contains("selected"));
    const next = rows[i + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) { e.preventDefault(); select(next); next.focus(); }
  });
  const wanted = location.hash.startsWith("#span-") && rows.find((r) => "#span-" + r.dataset.span === location.hash);
  if (wanted) select(wanted);
})();
