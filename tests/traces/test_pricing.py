"""traces.ingest.pricing reuses per-price-entry coefficients instead of calling genai-prices per span: it must
give exactly what genai-prices' own calc_price gives, for every model of the table, at any time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.ingest.pricing import PROVIDER_ALIASES, price_usage

MODELS = sorted({(p.id, m.id) for p in data_snapshot.get_snapshot().providers for m in p.models})


def genai_prices_reference(
    model: str, provider: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, at: datetime
) -> Decimal | None:
    """One plain calc_price call, as ingest did before the coefficients (with the same usage clamping)."""
    provider_id = PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else None
    cache_read = min(cache_read, input_tokens)
    cache_write = min(cache_write, input_tokens - cache_read)
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
    )
    for candidate in ([provider_id] if provider_id else []) + [None]:
        try:
            calc_price(Usage(input_tokens=1, output_tokens=1), model, provider_id=candidate)
        except LookupError:
            continue
        return calc_price(usage, model, provider_id=candidate, genai_request_timestamp=at).total_price
    return None


def test_every_model_of_the_table_prices_as_genai_prices_does() -> None:
    at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    assert len(MODELS) > 1000
    for provider, model in MODELS:
        expected = genai_prices_reference(model, provider, 123_457, 2_345, 20_000, 3_000, at)
        got = price_usage(
            model=model, provider=provider, input_tokens=123_457, output_tokens=2_345,
            cache_read_tokens=20_000, cache_write_tokens=3_000, at=at,
        )  # fmt: skip
        assert got == expected, (provider, model)


@settings(max_examples=400, deadline=None)
@given(
    pair=st.sampled_from(MODELS),
    input_tokens=st.integers(0, 3_000_000),
    output_tokens=st.integers(0, 200_000),
    cache_read=st.integers(0, 3_000_000),
    cache_write=st.integers(0, 3_000_000),
    at=st.datetimes(datetime(2023, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
)
def test_any_usage_at_any_time_prices_as_genai_prices_does(
    pair: tuple[str, str], input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, at: datetime
) -> None:
    """Tiered entries (long-context rates), time-of-day and dated prices included."""
    provider, model = pair
    expected = genai_prices_reference(model, provider, input_tokens, output_tokens, cache_read, cache_write, at)
    got = price_usage(
        model=model, provider=provider, input_tokens=input_tokens, output_tokens=output_tokens,
        cache_read_tokens=cache_read, cache_write_tokens=cache_write, at=at,
    )  # fmt: skip
    assert got == expected


@pytest.mark.parametrize(
    ("model", "provider", "priced"),
    [("gpt-4o-mini", "openai", True), ("claude-3-5-haiku-20241022", "anthropic", True), ("acme-13b", "acme", False)],
)
def test_cached_shares_larger_than_the_input_still_get_a_price(model: str, provider: str, priced: bool) -> None:
    """genai-prices rejects such usage with ValueError, which used to fail the whole ingest batch."""
    cost = price_usage(
        model=model, provider=provider, input_tokens=100, output_tokens=10, cache_read_tokens=80, cache_write_tokens=80
    )
    assert (cost is not None and cost > 0) if priced else cost is None
