"""The body's `provider` object (OpenRouter's routing): parsed with bounds, garbage refused, and
its meaning below the headers and above the profile (routing.preferences)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import provider_field
from gateway.errors import GatewayError
from gateway.provider_field import ProviderField
from gateway.routing import Preferences, fallbacks, preferences, rank
from market.route_candidates import RouteCandidate

USD = 1_000_000_000


def test_it_parses_every_field_openrouter_clients_send():
    parsed = provider_field.parse(
        {
            "order": ["DeepSeek", " minimax "],
            "only": ["deepseek"],
            "ignore": ["together"],
            "allow_fallbacks": False,
            "max_price": {"prompt": 0.5, "completion": "2", "request": 0, "image": None},
            "sort": "throughput",
            "data_collection": "deny",
            "require_parameters": True,
            "quantizations": ["fp8"],
            "zdr": False,
            "enforce_distillable_text": True,
            "preferred_min_throughput": {"p50": 10},
            "preferred_max_latency": 2.5,
        }
    )
    assert parsed == ProviderField(
        order=("deepseek", "minimax"),
        only=("deepseek",),
        ignore=("together",),
        allow_fallbacks=False,
        max_input_price_nusd=USD // 2,
        max_output_price_nusd=2 * USD,
        sort="throughput",
        trusted_only=True,
        soft_min_tps=10.0,
        soft_max_ttft_ms=2500.0,
    )


def test_take_removes_it_from_the_body():
    body = {"model": "m", "provider": {"sort": "price"}, "messages": []}
    assert provider_field.take(body) == ProviderField(sort="price")
    assert body == {"model": "m", "messages": []}
    null = {"model": "m", "provider": None}
    assert provider_field.take(null) is None
    assert null == {"model": "m"}
    assert provider_field.take({"model": "m"}) is None


def test_sort_as_an_object_and_data_collection_allow():
    parsed = provider_field.parse({"sort": {"by": "latency", "partition": "none"}})
    assert parsed.sort == "latency"
    assert provider_field.parse({"data_collection": "allow"}).trusted_only is False


GARBAGE = [
    ("a string", "'provider' must be an object"),
    ([], "'provider' must be an object"),
    ({"order": "deepseek"}, "'provider.order' must be an array of at most 64 provider slugs"),
    ({"order": [1]}, "'provider.order[0]' is not a provider slug"),
    ({"only": [None]}, "'provider.only[0]' is not a provider slug"),
    ({"ignore": ["bad slug!"]}, "'provider.ignore[0]' is not a provider slug"),
    ({"ignore": [""]}, "'provider.ignore[0]' is not a provider slug"),
    ({"order": ["x" * 65]}, "'provider.order[0]' is not a provider slug"),
    ({"only": ["deepseek"] * 65}, "'provider.only' must be an array of at most 64"),
    ({"order": [["deepseek"]]}, "'provider.order[0]' is not a provider slug"),
    ({"allow_fallbacks": "false"}, "'provider.allow_fallbacks' must be true or false."),
    ({"allow_fallbacks": 0}, "'provider.allow_fallbacks' must be true or false."),
    ({"max_price": 1}, "'provider.max_price' must be an object"),
    ({"max_price": {"prompt": -1}}, "'provider.max_price.prompt' cannot be negative."),
    ({"max_price": {"prompt": True}}, "'provider.max_price.prompt' must be a number"),
    ({"max_price": {"completion": [1]}}, "'provider.max_price.completion' must be a number"),
    ({"max_price": {"completion": 1e300}}, "'provider.max_price.completion' must be at most"),
    ({"max_price": {"prompt": 100001}}, "'provider.max_price.prompt' must be at most 100,000."),
    ({"max_price": {"prompt": "1e99999999"}}, "'provider.max_price.prompt' must be at most"),
    ({"max_price": {"prompt": "x" * 100}}, "'provider.max_price.prompt' is too long"),
    ({"max_price": {"prompt": "nan"}}, "'provider.max_price.prompt' must be a finite number."),
    ({"max_price": {"prompt": 1e-10}}, "'provider.max_price.prompt' has at most 9 decimal"),
    ({"max_price": {"request": "free"}}, "'provider.max_price.request' must be a number"),
    ({"max_price": {"tokens": 1}}, "'provider.max_price.tokens' is not a price"),
    ({"sort": "cheapest"}, "'provider.sort' must be one of price, latency, throughput."),
    ({"sort": 1}, "'provider.sort' must be one of"),
    ({"sort": {"by": "speed"}}, "'provider.sort' must be one of"),
    ({"sort": {"by": "price", "partition": 3}}, "'provider.sort.partition' must be a string."),
    ({"data_collection": True}, "'provider.data_collection' must be 'allow' or 'deny'."),
    ({"data_collection": "DENY"}, "'provider.data_collection' must be 'allow' or 'deny'."),
    ({"require_parameters": "yes"}, "'provider.require_parameters' must be a boolean"),
    ({"quantizations": "fp8"}, "'provider.quantizations' must be an array of strings"),
    ({"quantizations": [8]}, "'provider.quantizations' must be an array of strings"),
    ({"zdr": 1}, "'provider.zdr' must be a boolean"),
    ({"preferred_max_latency": "2"}, "'provider.preferred_max_latency' must be a number from 0"),
    ({"preferred_max_latency": 601}, "'provider.preferred_max_latency' must be at most 600."),
    ({"preferred_min_throughput": True}, "'provider.preferred_min_throughput' must be a number"),
    ({"preferred_min_throughput": -1}, "'provider.preferred_min_throughput' cannot be negative."),
    ({"preferred_max_latency": {"p42": 1}}, "'provider.preferred_max_latency' takes the percen"),
    ({"preferred_max_latency": {"p90": "x"}}, "'provider.preferred_max_latency.p90' must be a"),
    ({"preferred_min_throughput": [1]}, "'provider.preferred_min_throughput' must be a number"),
    ({"models": ["x"]}, "'provider.models' is not a field of 'provider'"),
]


@pytest.mark.parametrize(("value", "message"), GARBAGE)
def test_it_refuses_garbage_with_a_400_naming_the_field(value, message):
    with pytest.raises(GatewayError) as refused:
        provider_field.parse(value)
    assert refused.value.status == 400
    assert refused.value.message.startswith(message), refused.value.message


def _headers(**values: str) -> dict[bytes, bytes]:
    return {name.replace("_", "-").lower().encode(): v.encode() for name, v in values.items()}


def test_a_header_wins_over_the_body_and_the_body_over_the_profile():
    profile = {
        "provider_only": ["minimax"],
        "provider_ignore": ["x"],
        "provider_order": ["minimax"],
        "max_input_price_nusd": USD,
        "max_output_price_nusd": USD,
        "privacy_mode": "any",
    }
    body = provider_field.parse(
        {
            "only": ["deepseek"],
            "ignore": ["y"],
            "order": ["deepseek"],
            "max_price": {"prompt": 0.3, "completion": 0.4},
            "data_collection": "deny",
        }
    )
    from_body = preferences({}, profile, body=body)
    assert from_body.provider_only == ("deepseek",)
    assert from_body.provider_ignore == ("y",)
    assert from_body.provider_order == ("deepseek",)
    assert from_body.max_input_price_nusd == 3 * USD // 10
    assert from_body.max_output_price_nusd == 4 * USD // 10
    assert from_body.trusted_only is True
    headers = _headers(
        X_Provider_Only="z",
        X_Provider_Ignore="w",
        X_Provider_Order="z",
        X_Max_Price="0.1",
        X_Privacy_Mode="any",
    )
    from_headers = preferences(headers, profile, body=body)
    assert from_headers.provider_only == ("z",)
    assert from_headers.provider_ignore == ("w",)
    assert from_headers.provider_order == ("z",)
    assert from_headers.max_input_price_nusd == USD // 10
    assert from_headers.max_output_price_nusd == 4 * USD // 10  # no header for it
    assert from_headers.trusted_only is False
    # An empty body list says nothing: the profile's stands.
    empty = preferences({}, profile, body=provider_field.parse({"only": [], "order": []}))
    assert empty.provider_only == ("minimax",)
    assert empty.provider_order == ("minimax",)
    # data_collection "allow" (OpenRouter's default) does not loosen a trusted_only profile.
    allow = provider_field.parse({"data_collection": "allow"})
    assert preferences({}, {"privacy_mode": "trusted_only"}, body=allow).trusted_only is True


def _candidate(listing_id, provider, ask_in, ask_out, ttft=None, tps=None):
    return RouteCandidate(
        listing_id=listing_id,
        seller_id=listing_id,
        provider_slug=provider,
        wire_format="openai",
        base_url="http://x",
        model_id="m",
        upstream_model="m",
        modality="chat",
        price_unit="token",
        ask_input_nusd=ask_in,
        ask_output_nusd=ask_out,
        trusted=False,
        concurrency_cap=8,
        requests_per_minute=None,
        health="healthy",
        ttft_p50_ms=ttft,
        tps_p50=tps,
        context_tokens=None,
    )


ROWS = [
    _candidate(1, "deepseek", 300, 300, ttft=900, tps=10),
    _candidate(2, "minimax", 200, 200, ttft=None, tps=None),  # cheapest, unmeasured
    _candidate(3, "deepseek", 400, 400, ttft=100, tps=80),
]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [(None, [2, 1, 3]), ("price", [2, 1, 3]), ("latency", [3, 1, 2]), ("throughput", [3, 1, 2])],
)
def test_sort_orders_by_price_latency_or_throughput_with_the_unmeasured_last(sort, expected):
    ranked = rank(ROWS, Preferences(sort=sort))
    assert [c.listing_id for c in ranked] == expected


def test_no_fallbacks_keeps_the_first_listing_or_the_ordered_providers():
    alone = Preferences(allow_fallbacks=False)
    kept, set_aside = fallbacks(rank(ROWS, alone), alone)
    assert [c.listing_id for c in kept] == [2]
    assert [c.listing_id for c in set_aside] == [1, 3]
    ordered = Preferences(allow_fallbacks=False, provider_order=("deepseek",))
    kept, set_aside = fallbacks(rank(ROWS, ordered), ordered)
    assert [c.listing_id for c in kept] == [1, 3]
    assert set_aside == []
    with pytest.raises(GatewayError) as refused:
        rank(ROWS, Preferences(allow_fallbacks=False, provider_order=("together",)))
    assert refused.value.status == 503
    assert refused.value.extra["constraints"] == {"allow_fallbacks": 3}
    assert fallbacks(ROWS, Preferences()) == (ROWS, [])


def test_a_listing_set_aside_is_counted_under_its_reason_when_the_rest_are_full():
    with pytest.raises(GatewayError) as refused:
        rank(ROWS, Preferences(), full={2}, dropped={1: "max_cost", 3: "allow_fallbacks"})
    assert refused.value.extra["constraints"] == {
        "capacity": 1,
        "allow_fallbacks": 1,
        "max_cost": 1,
    }


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_FIELDS = st.sampled_from([*provider_field.KNOWN, *provider_field.IGNORED, "max_price", "x"])


@settings(max_examples=500, deadline=None)
@given(
    value=_JSON
    | st.dictionaries(_FIELDS, _JSON, max_size=6)
    | st.fixed_dictionaries(
        {"max_price": st.dictionaries(st.sampled_from(["prompt", "completion", "request"]), _JSON)}
    )
)
def test_any_json_is_parsed_or_refused_with_a_400_and_nothing_else(value):
    try:
        parsed = provider_field.parse(value)
    except GatewayError as refused:
        assert refused.status == 400
        assert refused.message.startswith("'provider")
        return
    assert isinstance(parsed, ProviderField)
    for price in (parsed.max_input_price_nusd, parsed.max_output_price_nusd):
        assert price is None or 0 <= price <= 100_000 * USD
