// SLO form: show only the fields that the chosen SLI kind and policy use (the server ignores the others anyway).
(function () {
  const form = document.querySelector("form.slo-form");
  if (!form) return;
  const kind = form.querySelector("[name=sli_kind]");
  const mode = form.querySelector("[name=policy_mode]");
  const comparator = form.querySelector("[name=comparator]");
  const field = (name) => form.querySelector("[name=" + name + "]").closest("label");
  function update() {
    const score = kind.value === "score";
    field("evaluator").hidden = !score;
    field("comparator").hidden = !score;
    field("threshold").hidden = !(["latency", "cost"].includes(kind.value) || (score && comparator.value !== "pass"));
    form.querySelector(".rules").hidden = mode.value !== "custom";
  }
  [kind, mode, comparator].forEach((el) => el.addEventListener("change", update));
  update();
})();
