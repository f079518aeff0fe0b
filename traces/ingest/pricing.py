"""Computed cost from tokens × the genai-prices table, for spans that report usage but no cost.

genai-prices counts input tokens *including* cached ones and prices the cached share at the cache rate,
so callers pass the total input count and the cache-read / cache-write subsets.

A full ``calc_price`` call costs ~80 µs (model lookup, unit registry, usage decomposition), a large share of
normalising an LLM span. For the same model and price entry, the price of token usage is linear in the four
counts unless the entry has tiers, so the coefficients are computed once per price entry *by genai-prices
itself* (on unit usages) and reused; tiered entries always take the full call. tests/traces/test_pricing.py checks
the two agree over the whole price table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

# OTel GenAI / OpenInference provider names → genai-prices provider ids where they differ.
PROVIDER_ALIASES = {
    "aws.bedrock": "aws",
    "amazon": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertexai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
}


@dataclass(frozen=True)
class _Linear:
    """price = base + Σ coefficient × count, for one price entry without tiers."""

    base: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


@lru_cache(maxsize=4096)
def _model(model: str, provider: str) -> tuple[Provider, ModelInfo] | None:
    """The priced model and its provider (the provider's own id first, then the model name alone), or None."""
    probe = Usage(input_tokens=1, output_tokens=1)
    provider_id = PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else None
    for candidate in ([provider_id] if provider_id else []) + [None]:
        try:
            found = calc_price(probe, model, provider_id=candidate)
        except LookupError:
            continue
        return found.provider, found.model
    return None


# Keyed by id(): ModelPrice defines __eq__ without __hash__. The entry keeps the object alive so its id is
# never reused; the table is a fixed snapshot, so this holds at most one entry per price in it.
_linear_cache: dict[int, tuple[ModelPrice, _Linear | None]] = {}


def _linear(price: ModelPrice) -> _Linear | None:
    cached = _linear_cache.get(id(price))
    if cached is not None:
        return cached[1]
    linear = None
    if not any(isinstance(value, TieredPrices) for value in vars(price).values()):

        def at(**counts: int) -> Decimal:
            return price.calc_price(Usage(**{"input_tokens": 0, "output_tokens": 0, **counts}))["total_price"]

        base = at()
        one_input = at(input_tokens=1)
        linear = _Linear(
            base=base,
            input=one_input - base,
            output=at(output_tokens=1) - base,
            cache_read=at(input_tokens=1, cache_read_tokens=1) - one_input,
            cache_write=at(input_tokens=1, cache_write_tokens=1) - one_input,
        )
    _linear_cache[id(price)] = (price, linear)
    return linear


def price_usage(
    *,
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    at: datetime | None = None,
) -> Decimal | None:
    """USD cost, or None when the model is not in the price table (unpriced, not free)."""
    found = _model(model, provider)
    if found is None:
        return None
    priced_provider, priced_model = found
    # Cached shares that together exceed the input are inconsistent usage; genai-prices rejects it, which would
    # fail the whole batch. The cache read is taken as reported and the write gets what input is left.
    cache_read = min(cache_read_tokens, input_tokens)
    cache_write = min(cache_write_tokens, input_tokens - cache_read)
    when = at or datetime.now(tz=UTC)
    linear = _linear(priced_model.get_prices(when))
    if linear is None:
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
        )
        return priced_model.calc_price(usage, priced_provider, genai_request_timestamp=when).total_price
    return (
        linear.base
        + linear.input * input_tokens
        + linear.output * output_tokens
        + linear.cache_read * cache_read
        + linear.cache_write * cache_write
    )
