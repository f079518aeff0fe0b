"""Computed cost from tokens × the genai-prices table, for spans that report usage but no cost.

genai-prices counts input tokens *including* cached ones and prices the cached share at the cache rate,
so callers pass the total input count and the cache-read / cache-write subsets.
"""

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price

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


@lru_cache(maxsize=4096)
def _known(model: str, provider: str) -> tuple[bool, str | None]:
    """Whether the model is priced, and the provider id that found it (None: matched by model name alone)."""
    probe = Usage(input_tokens=1, output_tokens=1)
    provider_id = PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else None
    for candidate in ([provider_id] if provider_id else []) + [None]:
        try:
            calc_price(probe, model, provider_id=candidate)
        except LookupError:
            continue
        return True, candidate
    return False, None


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
    known, provider_id = _known(model, provider)
    if not known:
        return None
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=min(cache_read_tokens, input_tokens) or None,
        cache_write_tokens=min(cache_write_tokens, input_tokens) or None,
    )
    return calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=at).total_price
