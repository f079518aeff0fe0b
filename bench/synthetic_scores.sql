-- Synthetic evaluator scores for every trace of the benchmark project: what eight evaluators would write.
INSERT INTO evals_score (key, name, value, label, passed, explanation, evidence, evaluator, evaluator_version,
                         source, comment, created_at, updated_at, project_id, trace_id, service, trace_start, superseded)
-- cost_ceiling's summary reads the evidence its evaluator writes (the trace's cost against the ceiling).
SELECT 'eval:' || t.id || '::' || n.name || ':1:' || n.name, n.name, v.value, '', v.value >= 0.5, '',
       CASE WHEN n.name = 'cost_ceiling'
            THEN jsonb_build_object('cost_usd', COALESCE(t.cost, 0)::text, 'max_usd', '0.05', 'ratio', 0.1)
            ELSE '{}' END,
       n.name, 1, 'evaluator', '', t.start_time, t.start_time, t.project_id, t.id, t.service, t.start_time, false
FROM traces_trace t
CROSS JOIN (VALUES ('grounding'), ('refusal'), ('prompt_injection'), ('pii'), ('secrets'), ('cost_ceiling'),
                   ('llm_calls'), ('tool_loop')) AS n(name)
-- Per row (the reference to t makes the subquery run for each; without it random() was drawn once, and every score
-- was 1.0): 10 % failing with values in [0, 0.49], the rest passing in [0.5, 1], three decimals (so values tie).
CROSS JOIN LATERAL (SELECT round(CASE WHEN u < 0.1 THEN u * 4.9 ELSE 0.5 + (u - 0.1) / 0.9 * 0.5 END::numeric, 3)::float
                    AS value FROM (SELECT random() + 0 * t.id AS u) r) v
WHERE t.project_id = (SELECT id FROM accounts_project WHERE slug = 'bench');
