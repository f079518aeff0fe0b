"""Score JSONL items offline with any evaluator: the same scoring code as the Celery path.

Input lines: {"input": str, "output": str, "context": [str, ...], "expected": str}; every field optional.
Output lines: {"line": n, "value", "passed", "label", "explanation", "evidence"}, or {"line": n, "error"}.
"""

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydantic import ValidationError
from tqdm import tqdm

from evals.evaluators.base import ContextDoc, EvalItem, EvaluatorError
from evals.evaluators.registry import REGISTRY
from evals.services import run_evaluator
from sre4ai_web.lib.validation import pydantic_message


def item_from_json(data: Any) -> EvalItem:
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object with input, output, context, expected")
    context = data.get("context") or []
    if isinstance(context, str):
        context = [context]
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise ValueError("context must be a list of strings")
    expected = data.get("expected")
    return EvalItem(
        input=str(data.get("input") or ""),
        output=str(data.get("output") or ""),
        context=tuple(ContextDoc(id=str(i), text=text) for i, text in enumerate(context)),
        expected=None if expected is None else (expected if isinstance(expected, str) else json.dumps(expected)),
    )


class Command(BaseCommand):
    help = "Run one evaluator over a JSONL file of items and write one score per line (for CI gates and benchmarks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--evaluator", required=True, choices=sorted(REGISTRY))
        parser.add_argument("--params", default="{}", help="Evaluator params as a JSON object.")
        parser.add_argument("--in", dest="infile", required=True, help="Input JSONL ('-' for stdin).")
        parser.add_argument("--out", dest="outfile", required=True, help="Output JSONL ('-' for stdout).")
        parser.add_argument(
            "--fail-under", type=float, default=None, help="Exit 1 if the pass rate is below this share (a CI gate)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = json.loads(options["params"])
            evaluator = REGISTRY[options["evaluator"]].from_config(params)
        except ValueError as exc:
            detail = pydantic_message(exc) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(f"Invalid --params: {detail}") from exc
        if options["infile"] == "-":
            lines = sys.stdin.read().splitlines()
        elif Path(options["infile"]).is_file():
            lines = Path(options["infile"]).read_text(encoding="utf-8").splitlines()
        else:
            raise CommandError(f"No such file: {options['infile']}")
        records = []
        passed = scored = errors = 0
        for number, line in enumerate(tqdm(lines, unit="item", disable=options["verbosity"] == 0), start=1):
            if not line.strip():
                continue
            record: dict[str, Any] = {"line": number}
            try:
                item = item_from_json(json.loads(line))
                result = run_evaluator(evaluator, item)
            except (ValueError, EvaluatorError) as exc:
                record["error"] = str(exc)
                errors += 1
            else:
                if result is None:
                    reason = evaluator.not_applicable(item) or "the evaluator does not apply to this item"
                    record.update(value=None, passed=None, label="n/a", explanation=f"Not applicable: {reason}.")
                else:
                    record.update(
                        name=result.name or evaluator.name,
                        value=result.value,
                        passed=result.passed,
                        label=result.label,
                        explanation=result.explanation,
                        evidence=result.evidence,
                    )
                    scored += 1
                    passed += bool(result.passed)
            records.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        if options["outfile"] == "-":
            sys.stdout.writelines(records)
        else:
            Path(options["outfile"]).write_text("".join(records), encoding="utf-8")
        rate = passed / scored if scored else 0.0
        self.stderr.write(f"{scored} scored, {passed} passed ({rate:.1%}), {errors} errors.")
        if options["fail_under"] is not None and rate < options["fail_under"]:
            raise CommandError(f"Pass rate {rate:.1%} is below --fail-under {options['fail_under']:.1%}.")
