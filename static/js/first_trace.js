// An empty project's overview ("send your first trace"): ask the server every few seconds whether a trace arrived,
// say so, and show the overview once it is counted (front/views/overview.py first_trace_status). A file, not inline: the
// Content-Security-Policy allows no inline script.
(function () {
  const panel = document.querySelector(".first-trace[data-status-url]");
  if (!panel) return;
  const state = panel.querySelector(".first-trace-state");
  // Every 3 s for the first ten minutes (someone is setting up an app), then every 15 s.
  const started = Date.now();
  const every = () => (Date.now() - started < 10 * 60 * 1000 ? 3000 : 15000);

  async function poll() {
    if (!document.hidden) {
      try {
        const response = await fetch(panel.dataset.statusUrl, {
          headers: { Accept: "application/json" },
          cache: "no-store",
          credentials: "same-origin",
        });
        if (response.ok) {
          const status = await response.json();
          if (status.ready) {
            window.location.reload();
            return;
          }
          if (status.trace) {
            const service = document.createElement("b");
            service.textContent = status.trace.service || "(no service)";
            state.replaceChildren(
              "A trace from ",
              service,
              " arrived; the overview appears as soon as it is counted (a few seconds).",
            );
          }
        }
      } catch (error) {
        // Signed out, or the server restarting: ask again at the next tick.
      }
    }
    window.setTimeout(poll, every());
  }
  window.setTimeout(poll, every());
})();
