// SLO form: show only the fields that the chosen SLI kind and policy use. A hidden SLI field is also disabled, so a
// value typed before switching kind is not sent (the server ignores what a kind does not use, either way).
(function () {
  const form = document.querySelector("form.slo-form");
  if (!form) return;
  const kind = form.querySelector("[name=sli_kind]");
  const mode = form.querySelector("[name=policy_mode]");
  function show(name, visible) {
    const input = form.querySelector("[name=" + name + "]");
    input.closest("label").hidden = !visible;
    input.disabled = !visible;
  }
  function update() {
    const score = kind.value === "score" || kind.value === "score_threshold";
    show("evaluator", score);
    show("comparator", kind.value === "score_threshold");
    show("threshold", ["score_threshold", "latency", "cost"].includes(kind.value));
    form.querySelector(".rules").hidden = mode.value !== "custom";
  }
  [kind, mode].forEach((el) => el.addEventListener("change", update));
  update();
})();
