"""Canary analysis: two cohorts of one service (by release, model, prompt or any span attribute) compared signal
by signal, scored and judged pass / marginal / fail. Computed on request; nothing is stored."""
