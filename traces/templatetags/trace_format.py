"""Display helpers. They return plain strings (or plain data), so Django still escapes everything they output;
the exceptions, ``score_chips`` and ``trace_rows``, build their HTML themselves and escape every text they insert."""

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from html import escape as _escape
from typing import Any
from urllib.parse import quote

from django import template
from django.template.defaultfilters import urlencode
from django.urls import reverse
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString, mark_safe

from traces.ingest.normalize import is_chat as _is_chat

register = template.Library()


@register.filter
def duration(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


SMALLEST_USD = Decimal("0.00000001")
# usd's counterpart on Plotly chart axes (d3-format): three significant figures, so sub-cent ticks keep their digits.
USD_AXIS_FORMAT = "$.3~r"


@register.filter
def usd(value: Decimal | float | None) -> str:
    if value is None:
        return "–"
    value = Decimal(str(value))
    if not value.is_finite():
        return "–"
    if value < 0:
        return "-" + usd(-value)
    if value == 0:
        return "$0"
    if value < SMALLEST_USD:
        return f"<${SMALLEST_USD:f}"
    if value < Decimal("0.01"):
        # Three significant figures: a per-request cost of $0.0000042 must not print as "$0.".
        return f"${value:.{2 - value.adjusted()}f}".rstrip("0")
    return f"${value:,.4f}".rstrip("0").rstrip(".")


@register.filter
def tokens(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}"


INLINE_JSON_WIDTH = 72


def _json_lines(value: Any, indent: int) -> str:
    """Indented JSON, but anything short stays on one line and a long list of scalars is packed several
    items per line (a list of 30 numbers takes two lines, not 30)."""
    flat = json.dumps(value, ensure_ascii=False, default=str)
    if not isinstance(value, list | dict) or not value or len(flat) + indent <= INLINE_JSON_WIDTH:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list) and all(not isinstance(v, list | dict) for v in value):
        lines, line = [], ""
        for item in (json.dumps(v, ensure_ascii=False, default=str) for v in value):
            if line and len(pad) + len(line) + len(item) + 2 > INLINE_JSON_WIDTH:
                lines.append(line)
                line = ""
            line = f"{line} {item}," if line else f"{item},"
        lines.append(line.rstrip(","))
        return "[\n" + "\n".join(pad + ln for ln in lines) + "\n" + " " * indent + "]"
    if isinstance(value, list):
        items = [pad + _json_lines(v, indent + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_json_lines(v, indent + 2)}" for k, v in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def _parsed(value: Any) -> Any:
    """A string that holds a JSON object or array is that object or array; anything else is unchanged."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@register.filter
def pretty(value: Any) -> str:
    """JSON pretty-printed; a string that holds JSON is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
        if isinstance(value, str):
            return value
    return _json_lines(value, 0)


@register.filter
def payload(value: Any) -> dict[str, Any]:
    """How to show an input or output: ``{"kind": "chat", "messages": [...]}``, ``{"kind": "text", "text": ...}``
    or ``{"kind": "json", "text": <pretty JSON>}``. A string holding JSON is shown as that JSON."""
    value = _parsed(value)
    messages = as_messages(value)
    if messages:
        return {"kind": "chat", "messages": messages}
    if isinstance(value, str):
        return {"kind": "text", "text": value}
    return {"kind": "json", "text": _json_lines(value, 0)}


@register.filter
def as_text(value: Any) -> str:
    """A message's content: text as it is, anything structured (a list of parts, a dict) as pretty JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def is_chat(value: Any) -> bool:
    return _is_chat(value)


@register.filter
def as_messages(value: Any) -> list[Mapping[str, Any]] | None:
    """Chat messages to show as messages: a list of them, or a single ``{role, content}`` message
    (Langfuse generations often record the completion as one message object). Otherwise None."""
    if _is_chat(value):
        return list(value)
    if (
        isinstance(value, Mapping)
        and isinstance(value.get("role"), str)
        and ("content" in value or "tool_calls" in value)
    ):
        return [value]
    return None


@register.filter
def is_text(value: Any) -> bool:
    return isinstance(value, str)


@register.filter
def offset_from(start: datetime | None, origin: datetime | None) -> str:
    """``span.start_time|offset_from:trace.start_time`` → "+1.20 s"."""
    if start is None or origin is None:
        return "–"
    ms = (start - origin).total_seconds() * 1000.0
    return ("+" if ms >= 0 else "−") + duration(abs(ms))


@register.filter
def at_most(value: int | None, limit: int) -> int:
    """Clamp a number (e.g. a waterfall depth, so deep trees keep room for the span name)."""
    return min(int(value or 0), int(limit))


@register.filter
def get_item(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def verdict_label(verdict: str) -> str:
    """drift / no_drift / insufficient_data → words."""
    return verdict.replace("_", " ")


def _score_chip(score: Any, list_url: str) -> str:
    """One check as a link to the traces that failed it (or that have it, when it did not fail); every value
    escaped."""
    if score.passed is False:
        css, verdict, param = "fail", "failed", "failing"
    elif score.passed:
        css, verdict, param = "pass", "passed", "score"
    else:
        css, verdict, param = "neutral", "no verdict", "score"
    value = "" if score.value is None else f"{score.value:.3g}"
    title = f"{score.name}: {verdict}" + (f" · {value}" if value else "") + (f" · {score.label}" if score.label else "")
    text = _escape(score.name) + (f" <b>{value}</b>" if value else "")
    href = f"{list_url}?{param}={urlencode(score.name)}"
    return f'<a class="score-chip {css}" href="{_escape(href)}" title="{_escape(title)}">{text}</a>'


@register.simple_tag
def score_chips(project_slug: str, trace: Any) -> SafeString:
    """A trace's checks in one line: what failed or has no verdict, each a filter link; the passing ones folded
    into one "✓ N" chip that unfolds into theirs (the list stays one row per trace at 3 a.m.).

    Built here with the standard library's escape rather than by including a chip template per score: the trace
    list shows 50 traces of ~8 checks, and 400 template includes with a URL reversal each were most of the
    page's Python time (docs/benchmarks.md §13)."""
    return mark_safe(_chips(reverse("trace_list", args=[project_slug]), trace))


def _chips(list_url: str, trace: Any) -> str:
    html = "".join(_score_chip(s, list_url) for s in trace.scores_shown if not s.passed)
    passed = trace.scores_passed
    if passed:
        names = _escape(", ".join(s.name for s in passed))
        chips = "".join(_score_chip(s, list_url) for s in passed)
        html += (
            f'\n<details class="passed-checks"><summary class="score-chip pass" title="{len(passed)} passed: {names}">'
            f"✓ {len(passed)}</summary>{chips}</details>"
        )
    return html


# The characters reverse() leaves as they are in a path argument ("/" aside: a trace id with one has no page).
URL_SAFE = RFC3986_SUBDELIMS + "~:@"
NO_VALUE = '<span class="muted">–</span>'
UNPRICED_TITLE = "Some spans use a model missing from the price table: the cost is a lower bound."


def _dash_or(text: str) -> str:
    return _escape(text) if text else "–"


def _person_link(url: str, value: str, title: str, css: str) -> str:
    """The session or user cell: a link to its page, or a dash."""
    if not value:
        return f'<td class="{css}">{NO_VALUE}</td>'
    return (
        f'<td class="{css}"><a href="{url}?id={_escape(urlencode(value))}" title="{title} {_escape(value)}">'
        f"{_escape(value)}</a></td>"
    )


def _preview(css: str, text: str, missing: str) -> str:
    if not text:
        return f'<span class="{css} none">{missing}</span>'
    return f'<span class="{css}" title="{_escape(text)}">{_escape(text)}</span>'


def _trace_row(trace: Any, urls: Mapping[str, str], columns: Collection[str], can_edit: bool, score: bool) -> str:
    """One row of the trace list, its cells in the table's column order."""
    trace_id = _escape(trace.trace_id)
    detail_url = _escape(f"{urls['traces']}{quote(trace.trace_id, safe=URL_SAFE)}/")
    cells = []
    if can_edit:
        cells.append(
            f'<td class="pick"><input type="checkbox" name="trace" value="{trace_id}" form="bulk" '
            f'aria-label="Select trace {trace_id}"></td>'
        )
    start = trace.start_time.astimezone(UTC)
    cells.append(
        f'<td class="start"><a href="{detail_url}" title="{start:%Y-%m-%d %H:%M:%S} UTC · trace {trace_id}">'
        f"{start:%m-%d %H:%M:%S}</a></td>"
    )
    if "service" in columns:
        cells.append(f'<td class="service" title="{_escape(trace.service)}">{_dash_or(trace.service)}</td>')
    if "environment" in columns:
        environment = _escape(trace.environment)
        cells.append(f'<td class="env muted" title="{environment}">{environment}</td>')
    name = _escape(trace.name)
    cells.append(f'<td class="name"><a href="{detail_url}" title="{name}">{name or "(unnamed)"}</a></td>')
    if "duration" in columns:
        cells.append(f'<td class="num dur">{duration(trace.duration_ms)}</td>')
    if "status" in columns:
        status = _escape(trace.status)
        failed = trace.error_count
        more = f' <span class="muted" title="{failed} spans failed">×{failed}</span>' if failed > 1 else ""
        cells.append(f'<td class="col-status"><span class="status {status}">{status}</span>{more}</td>')
    if "scores" in columns:
        cells.append(f'<td class="col-checks">{_chips(urls["list"], trace)}</td>')
    if score:
        value = getattr(trace, "score_sort", None)
        cells.append(f'<td class="num score-value">{"" if value is None else f"{value:.3g}"}</td>')
    if "models" in columns:
        models = "".join(f'<span class="chip">{_escape(m)}</span>' for m in trace.model_names) or NO_VALUE
        title = _escape(", ".join(trace.model_names))
        cells.append(f'<td class="models" title="{title}">{models}</td>')
    if "tokens" in columns:
        cells.append(f'<td class="num tokens">{tokens(trace.total_tokens)}</td>')
    if "cost" in columns:
        if not trace.has_unpriced:
            cells.append(f'<td class="num cost">{_escape(usd(trace.cost))}</td>')
        elif trace.cost is None:
            cells.append(f'<td class="num cost" title="{UNPRICED_TITLE}"><span class="muted">unpriced</span></td>')
        else:
            cost = _escape(usd(trace.cost))
            cells.append(f'<td class="num cost" title="{UNPRICED_TITLE}">{cost}<sup class="muted">+?</sup></td>')
    if "session" in columns:
        cells.append(_person_link(urls["session"], trace.session_id, "Conversation", "session"))
    if "user" in columns:
        cells.append(_person_link(urls["user"], trace.user_id, "User", "user"))
    if "release" in columns:
        cells.append(f'<td class="release muted" title="{_escape(trace.release)}">{_dash_or(trace.release)}</td>')
    if "io" in columns:
        line = (
            _preview("in", trace.input_preview, "no input")
            + '<span class="arrow">→</span>'
            + _preview("out", trace.output_preview, "no output")
        )
        cells.append(
            f'<td class="io" tabindex="0" title="Click to show the whole preview"><div class="io-line">{line}</div></td>'
        )
    css = "is-error" if trace.status == "error" else ""
    return f'<tr class="{css}" data-trace="{trace_id}">\n' + "\n".join(cells) + "\n</tr>"


@register.simple_tag
def trace_rows(
    project_slug: str, traces: list[Any], columns: Collection[str], can_edit: bool, score_name: str
) -> SafeString:
    """The trace list's rows, every text escaped. Built here rather than in the template: 50 rows of up to 16
    cells through Django's template engine were two thirds of the list's Python time (docs/benchmarks.md §17,
    session 16). The links are reversed once per page, not per row and per row's checks (~10 µs a reversal)."""
    urls = {
        "list": reverse("trace_list", args=[project_slug]),
        # What reverse("trace_detail") gives for each trace id: this prefix, the id quoted as reverse quotes it, "/".
        "traces": reverse("trace_detail", args=[project_slug, "-"]).removesuffix("-/"),
        "session": _escape(reverse("session_detail", args=[project_slug])),
        "user": _escape(reverse("user_detail", args=[project_slug])),
    }
    rows = (_trace_row(t, urls, columns, can_edit, bool(score_name)) for t in traces)
    return mark_safe("\n".join(rows))
