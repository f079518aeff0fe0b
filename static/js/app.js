// Behaviour every page shares. It lives here rather than in on* attributes because the Content-Security-Policy
// allows no inline script (docs/security.md).

// <form data-confirm="Delete this …?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// <select data-autosubmit>: submit its form on change; data-range="24h" first puts that into the form's range.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (!field.matches("select[data-autosubmit]")) return;
  if (field.dataset.range !== undefined) field.form.elements.range.value = field.dataset.range;
  field.form.submit();
});

// The project switcher in the header opens the chosen project.
document.addEventListener("DOMContentLoaded", () => {
  const switcher = document.querySelector("form.switcher");
  if (!switcher) return;
  const open = () => {
    window.location.href = "/p/" + encodeURIComponent(switcher.elements.p.value) + "/";
  };
  switcher.addEventListener("submit", (event) => {
    event.preventDefault();
    open();
  });
  switcher.elements.p.addEventListener("change", open);
});

// <button data-copy="ID">: copy the text of the element with that id (the clipboard API needs a secure context, so
// elsewhere the text is selected for Ctrl+C instead).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    window.setTimeout(() => (button.textContent = label), 1500);
  };
  const select = () => {
    const range = document.createRange();
    range.selectNodeContents(source);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent).then(done, select);
  } else {
    select();
  }
});

// <select data-kind-switch> (the channel type): show only its form's <fieldset data-kind> of the chosen type. The
// others are disabled too, so their inputs are neither sent nor checked; without script every fieldset shows and
// the server reads the chosen type's.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-kind-switch]").forEach((select) => {
    const sets = select.form.querySelectorAll("fieldset[data-kind]");
    const show = () => sets.forEach((set) => {
      const chosen = set.dataset.kind === select.value;
      set.hidden = !chosen;
      set.disabled = !chosen;
    });
    select.addEventListener("change", show);
    show();
  });
});
