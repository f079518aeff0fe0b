"""The grounding evaluator gives the same output in every process, whatever Python's string hash seed.

Its claim measures sum inverse-document-frequency weights over sets of roots, whose iteration order depends on
``PYTHONHASHSEED``. When those sums were inexact, two context passages that tie could differ in the last bit
and swap places as a claim's best passage from one process to the next (grounding-dev item 4913, a WiCE claim:
the best sentence was 3 or 17 depending on the seed). The weights are now multiples of 2**-20, so every such sum
is exact and the order of its terms does not matter.

The context below is cut from that item's (WiCE, Kamoi et al. 2023: text from Wikipedia's cited web pages,
CC BY-SA 4.0): two passages tie, one holding "Merry", "Company", "Terrace" and 1616, the other "Mauritshuis"
in place of "Merry". Before the change, ``PYTHONHASHSEED=6`` chose the second and gave another score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from evals.evaluators import grounding_features as gf

ROOT = Path(__file__).resolve().parents[3]

CONTEXT = (
    "J. Paul Getty Museum, Los Angeles Merry Company on a Terrace (c. 1616–17), Willem Buytewech. "
    "Portrait of a man. Paul Getty Museum, Los AngelesChrist as the Man of Sorrows. "
    "Mauritshuis, The HagueMerry Company on a Terrace (c. 1616–17), Willem Buytewech."
)
ANSWER = '"Merry Company on a Terrace" (1616) is in the collection of the Mauritshuis, the Hague.'

SCRIPT = """
import json, sys
from evals.evaluators.base import ContextDoc, EvalItem
from evals.evaluators.grounding import Grounding
context, answer = json.loads(sys.stdin.read())
evaluator = Grounding.from_config({})
item = EvalItem("", answer, (ContextDoc("doc-0", context),))
result = evaluator.evaluate(item)
measured = evaluator.measure(item)
claims = [
    (v.features.values, v.features.best, v.features.window)
    for v in measured.verdicts if v.features is not None
]
print(json.dumps([result.value, result.passed, result.evidence, claims], sort_keys=True, default=repr))
"""


def _run(seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps([CONTEXT, ANSWER]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return done.stdout


def test_output_does_not_depend_on_the_hash_seed() -> None:
    outputs = {seed: _run(seed) for seed in range(8)}
    assert len(set(outputs.values())) == 1, {seed: out[:300] for seed, out in outputs.items()}


def test_weights_sum_exactly_in_any_order() -> None:
    table, rare = gf.idf_table()
    weights = [*table.values(), rare, 1.0]
    assert all(w * gf.IDF_GRID == int(w * gf.IDF_GRID) for w in weights)
    sample = sorted(weights)[:: max(1, len(weights) // 400)]
    forward = 0.0
    for w in sample:
        forward += w
    backward = 0.0
    for w in reversed(sample):
        backward += w
    assert forward == backward == sum(sorted(sample, key=str))
