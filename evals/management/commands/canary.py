"""Gate a deployment on a canary comparison.

Exit status: 0 when the verdict is pass or marginal (``--strict``: pass only), 1 when it is fail, 2 when the input
is wrong (unknown project or service, empty cohort, bad dates or settings): the error goes to stderr.
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Project
from evals.canary.cohorts import CohortError
from evals.canary.forms import CONFIG_FIELDS, TIME_HELP, CanaryForm

BAD_INPUT = 2


class Command(BaseCommand):
    help = "Compare a canary cohort with the baseline cohort of a service; exit 1 on a fail verdict (2 on bad input)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--service", required=True)
        parser.add_argument(
            "--attribute",
            default="release",
            help="release (default), model, prompt, environment or a span/resource attribute.",
        )
        parser.add_argument("--baseline", required=True, help="Attribute value of the version in production.")
        parser.add_argument("--canary", required=True, help="Attribute value of the new version.")
        parser.add_argument("--since", default="", help=TIME_HELP + " Default: 24 h before --until.")
        parser.add_argument("--until", default="", help=TIME_HELP + " Default: now.")
        parser.add_argument("--json", action="store_true", help="Print the whole result as JSON.")
        parser.add_argument("--strict", action="store_true", help="Exit 1 on a marginal verdict too.")
        for name in CONFIG_FIELDS:
            # argparse expands % in help text ("0.1 = 10%"): the form's text is written for people, so escape it.
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                default="",
                help=str(CanaryForm.base_fields[name].help_text).replace("%", "%%"),
            )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.", returncode=BAD_INPUT)
        form = CanaryForm({name: options[name] for name in CanaryForm.base_fields})
        if not form.is_valid():
            problems = []
            for field, errors in form.errors.get_json_data().items():
                text = " ".join(str(e["message"]) for e in errors)
                problems.append(text if field == "__all__" else f"--{field.replace('_', '-')}: {text}")
            raise CommandError("; ".join(problems), returncode=BAD_INPUT)
        try:
            report = form.analyse(project)
        except CohortError as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from exc
        result = report.result
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        else:
            self.stdout.write(
                f"{report.attribute} {report.baseline.value} ({report.baseline.traces} traces) -> "
                f"{report.canary.value} ({report.canary.traces} traces), {report.service}"
            )
            for s in result.signals:
                self.stdout.write(f"  {s.classification:<17} {s.label:<30} {s.reason}")
            score = "-" if result.score is None else f"{result.score:.0f}"
            self.stdout.write(f"verdict: {result.verdict} (score {score}): {result.reason}")
        if result.verdict == "fail" or (options["strict"] and result.verdict == "marginal"):
            raise SystemExit(1)
