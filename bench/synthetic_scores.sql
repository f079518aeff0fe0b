-- Synthetic evaluator scores for every trace of the benchmark project: what eight evaluators would write.
INSERT INTO evals_score (key, name, value, label, passed, explanation, evidence, evaluator, evaluator_version,
                         source, comment, created_at, updated_at, project_id, trace_id, service, trace_start)
-- cost_ceiling's summary reads the evidence its evaluator writes (the trace's cost against the ceiling).
SELECT 'eval:' || t.id || '::' || n.name || ':1:' || n.name, n.name, v.value, '', v.value >= 0.5, '',
       CASE WHEN n.name = 'cost_ceiling'
            THEN jsonb_build_object('cost_usd', COALESCE(t.cost, 0)::text, 'max_usd', '0.05', 'ratio', 0.1)
            ELSE '{}' END,
       n.name, 1, 'evaluator', '', t.start_time, t.start_time, t.project_id, t.id, t.service, t.start_time
FROM traces_trace t
CROSS JOIN (VALUES ('grounding'), ('refusal'), ('prompt_injection'), ('pii'), ('secrets'), ('cost_ceiling'),
                   ('llm_calls'), ('tool_loop')) AS n(name)
CROSS JOIN LATERAL (SELECT CASE WHEN random() < 0.9 THEN 1.0 ELSE 0.0 END AS value) v
WHERE t.project_id = (SELECT id FROM accounts_project WHERE slug = 'bench');
