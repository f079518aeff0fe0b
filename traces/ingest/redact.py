"""PII and secret redaction at ingest, for projects that turn it on (Project.redact_pii).

E-mail addresses, phone, card and IBAN numbers (sre4ai_web.lib.textscan.pii) and real-looking secrets
(sre4ai_web.lib.textscan.secrets; documented examples are left alone) are replaced by ``[REDACTED:<kind>]`` in every
text a span stores: input and output, chat messages, retrieved documents, tool arguments and results, the status message,
and the raw attributes and events they were read from; the previews derive from the redacted texts. The span keeps
how many values of each kind it lost in its attribute ``sre4ai.redacted.<kind>``, and the ``pii`` evaluator counts
the markers, so PII SLIs still see a leak that was redacted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from typing import Any

from sre4ai_web.lib.textscan.pii import ALL_KINDS, REDACTION_MARKER, find_pii
from sre4ai_web.lib.textscan.secrets import find_secrets
from traces.ingest.normalize import SpanRecord

COUNT_PREFIX = "sre4ai.redacted."
_PII_KINDS = frozenset(ALL_KINDS)
_MARKER = re.compile(re.escape(REDACTION_MARKER).replace(r"\{kind\}", r"(email|phone|card|iban|secret)"))


def redact_text(text: str) -> str:
    """``text`` with every finding replaced by its marker."""
    findings = [(h.start, h.end, h.kind) for h in find_pii(text, _PII_KINDS)]
    findings += [(h.start, h.end, "secret") for h in find_secrets(text) if not h.example]
    if not findings:
        return text
    out, position = [], 0
    for start, end, kind in sorted(findings):
        if start < position:  # overlaps one already replaced (a card number inside a secret, say)
            continue
        out += [text[position:start], REDACTION_MARKER.format(kind=kind)]
        position = end
    out.append(text[position:])
    return "".join(out)


def redact_json(value: Any) -> Any:
    """Strings, lists and objects with every string redacted; other values as they are."""
    if isinstance(value, str):
        if value[:1] in "[{":  # a JSON document in a string (gen_ai.input.messages): redact inside, keep it JSON
            try:
                return json.dumps(redact_json(json.loads(value)), ensure_ascii=False)
            except ValueError:
                pass
        return redact_text(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    return value


def redact_record(record: SpanRecord) -> SpanRecord:
    """The span with its texts redacted and, per kind, the markers in its normalised texts as an attribute. Counted
    from the markers rather than while replacing, so texts redacted earlier (log events kept until their span
    arrives, a span normalised again) count too."""
    redacted = replace(
        record,
        input=redact_json(record.input),
        output=redact_json(record.output),
        tool_args=redact_json(record.tool_args),
        tool_result=redact_json(record.tool_result),
        status_message=redact_text(record.status_message),
        documents=[replace(d, content=redact_text(d.content)) for d in record.documents],
        attributes=redact_json(record.attributes),
        events=redact_json(record.events),
    )
    texts = [redacted.input, redacted.output, redacted.tool_args, redacted.tool_result, redacted.status_message]
    texts += [d.content for d in redacted.documents]
    counts = Counter(m.group(1) for m in _MARKER.finditer(json.dumps(texts, ensure_ascii=False)))
    attributes = {k: v for k, v in redacted.attributes.items() if not k.startswith(COUNT_PREFIX)}
    attributes.update({COUNT_PREFIX + kind: n for kind, n in sorted(counts.items())})
    return replace(redacted, attributes=attributes)


def redact_records(records: list[SpanRecord]) -> list[SpanRecord]:
    return [redact_record(r) for r in records]
