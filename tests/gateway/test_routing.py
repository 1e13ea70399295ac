"""Routing over RouteCandidate rows: header > profile > default, hard filters, soft order, 503 counts."""

import pytest

from gateway.errors import NO_ELIGIBLE_SELLER, GatewayError
from gateway.routing import Preferences, preferences, rank, resolve_model
from market.route_candidates import RouteCandidate

USD = 1_000_000_000


def cand(
    listing_id,
    *,
    provider="deepseek",
    ask_in=0.4,
    ask_out=1.2,
    health="healthy",
    trusted=False,
    ttft=None,
    tps=None,
    capped=False,
):
    return RouteCandidate(
        listing_id=listing_id,
        seller_id=100 + listing_id,
        provider_slug=provider,
        wire_format="openai",
        base_url="http://127.0.0.1:9/v1",
        model_id="deepseek/deepseek-chat",
        upstream_model="deepseek-chat",
        modality="chat",
        price_unit="token",
        ask_input_nusd=int(ask_in * USD),
        ask_output_nusd=int(ask_out * USD),
        trusted=trusted,
        concurrency_cap=8,
        requests_per_minute=None,
        health=health,
        ttft_p50_ms=ttft,
        tps_p50=tps,
        context_tokens=128_000,
        daily_cap_reached=capped,
    )


def headers(**values):
    return {
        name.lower().replace("_", "-").encode(): value.encode() for name, value in values.items()
    }


def ids(rows):
    return [c.listing_id for c in rows]


def test_price_is_the_base_order_weighting_input_three_to_one():
    rows = [
        cand(1, ask_in=0.5, ask_out=0.5),
        cand(2, ask_in=0.3, ask_out=1.4),
        cand(3, ask_in=0.4, ask_out=0.4),
    ]
    # blends: 1 → 0.5, 2 → 0.575, 3 → 0.4
    assert ids(rank(rows, Preferences())) == [3, 1, 2]


def test_max_price_header_is_usd_per_million_input_tokens_and_beats_the_profile():
    rows = [cand(1, ask_in=0.45), cand(2, ask_in=0.25)]
    profile = {"max_input_price_nusd": int(0.5 * USD)}
    assert ids(rank(rows, preferences({}, profile))) == [2, 1]
    assert ids(rank(rows, preferences(headers(X_Max_Price="0.30"), profile))) == [2]


def test_hard_ttft_and_throughput_remove_unmeasured_and_slow_listings():
    rows = [cand(1, ttft=200, tps=50), cand(2, ttft=900, tps=80), cand(3)]
    assert ids(rank(rows, preferences(headers(X_Hard_Max_TTFT_Ms="500"), None))) == [1]
    assert ids(rank(rows, preferences(headers(X_Hard_Min_Throughput_TPS="60"), None))) == [2]


def test_soft_preferences_only_reorder():
    rows = [cand(1, ask_in=0.2, ttft=900, tps=10), cand(2, ask_in=0.4, ttft=100, tps=90)]
    assert ids(rank(rows, preferences(headers(X_Max_TTFT_Ms="500"), None))) == [2, 1]
    assert ids(rank(rows, preferences(headers(X_Min_Throughput_TPS="50"), None))) == [2, 1]
    assert ids(rank(rows, Preferences())) == [1, 2]


def test_provider_only_ignore_and_order():
    rows = [
        cand(1, provider="deepseek", ask_in=0.1),
        cand(2, provider="alt", ask_in=0.3),
        cand(3, provider="other", ask_in=0.2),
    ]
    assert ids(rank(rows, preferences(headers(X_Provider_Only="alt, other"), None))) == [3, 2]
    assert ids(rank(rows, preferences(headers(X_Provider_Ignore="deepseek"), None))) == [3, 2]
    assert ids(rank(rows, preferences(headers(X_Provider_Order="alt,other"), None))) == [2, 3, 1]


def test_profile_constraints_apply_when_no_header_and_combine_with_headers():
    rows = [
        cand(1, provider="deepseek", trusted=True, ask_in=0.4),
        cand(2, provider="alt", ask_in=0.1),
        cand(3, provider="deepseek", ask_in=0.2),
    ]
    profile = {"privacy_mode": "trusted_only", "provider_only": ["deepseek"]}
    assert ids(rank(rows, preferences({}, profile))) == [1]
    assert ids(rank(rows, preferences(headers(X_Privacy_Mode="any"), profile))) == [3, 1]
    assert ids(
        rank(rows, preferences(headers(X_Provider_Only="alt", X_Privacy_Mode="any"), profile))
    ) == [2]


def test_cooling_down_and_suspended_listings_get_no_traffic():
    rows = [
        cand(1, health="cooling_down"),
        cand(2, health="suspended"),
        cand(3, health="degraded", ask_in=0.1),
        cand(4, ask_in=0.3),
    ]
    assert ids(rank(rows, Preferences())) == [4, 3]


def test_nothing_eligible_is_a_503_counting_each_listing_under_its_first_reason():
    rows = [
        cand(1, ask_in=0.5, health="cooling_down"),
        cand(2, ask_in=0.45),
        cand(3, ask_in=0.2, provider="alt"),
    ]
    with pytest.raises(GatewayError) as caught:
        rank(rows, preferences(headers(X_Max_Price="0.40", X_Provider_Ignore="alt"), None))
    assert caught.value.status == 503
    assert caught.value.message == NO_ELIGIBLE_SELLER
    assert caught.value.extra == {
        "constraints": {"cooling_down": 1, "max_price": 1, "provider_ignore": 1},
        "market": f"http://127.0.0.1:8000/market/{rows[0].model_id}/",
    }


def test_a_listing_whose_daily_spend_cap_is_used_up_gets_no_traffic():
    assert ids(rank([cand(1, capped=True, ask_in=0.1), cand(2)], Preferences())) == [2]
    with pytest.raises(GatewayError) as caught:
        rank([cand(1, capped=True)], Preferences())
    assert caught.value.extra["constraints"] == {"daily_spend_cap": 1}


# One listing removed by exactly one reason each: (candidate fields, request, reason).
REASON_CASES = [
    ({"health": "suspended"}, {}, "suspended"),
    ({"dead": True}, {}, "suspended"),
    ({"offline": "suspended"}, {}, "suspended"),
    ({"offline": "paused"}, {}, "paused"),
    ({"health": "cooling_down"}, {}, "cooling_down"),
    ({"full": True}, {}, "capacity"),
    ({"capped": True}, {}, "daily_spend_cap"),
    ({"ask_in": 0.45}, {"X_Max_Price": "0.40"}, "max_price"),
    ({}, {"max_output_price_nusd": int(1.0 * USD)}, "max_output_price"),
    ({}, {"X_Provider_Only": "alt"}, "provider_only"),
    ({}, {"X_Provider_Ignore": "deepseek"}, "provider_ignore"),
    ({}, {"X_Privacy_Mode": "trusted_only"}, "privacy_mode"),
    ({"ttft": 900, "tps": 90}, {"X_Hard_Max_TTFT_Ms": "500"}, "hard_max_ttft_ms"),
    ({"ttft": 100, "tps": 10}, {"X_Hard_Min_Throughput_TPS": "50"}, "hard_min_throughput_tps"),
    ({}, {"X_Hard_Max_TTFT_Ms": "500"}, "unmeasured"),
    ({"ttft": 100}, {"X_Hard_Min_Throughput_TPS": "50"}, "unmeasured"),
]


def _request(case: dict) -> Preferences:
    profile = {k: v for k, v in case.items() if not k.startswith("X_")}
    return preferences(headers(**{k: v for k, v in case.items() if k.startswith("X_")}), profile)


@pytest.mark.parametrize(("fields", "request_", "reason"), REASON_CASES)
def test_the_503_counts_a_listing_under_its_reason_and_an_eligible_one_is_served(
    fields, request_, reason
):
    fields = dict(fields)
    dead, full, offline = (
        fields.pop("dead", False),
        fields.pop("full", False),
        fields.pop("offline", None),
    )
    removed = [] if offline else [cand(1, **fields)]
    good = cand(
        2,
        provider="alt" if reason.startswith("provider_") else "deepseek",
        ask_in=0.1,
        ask_out=0.3,
        trusted=True,
        ttft=100,
        tps=90,
    )
    kwargs = {
        "dead": {1} if dead else set(),
        "full": {1} if full else set(),
        "offline": {offline: 1} if offline else None,
        "model_id": "deepseek/deepseek-chat",
    }
    with pytest.raises(GatewayError) as caught:
        rank(removed, _request(request_), **kwargs)
    assert caught.value.status == 503
    assert caught.value.extra == {
        "constraints": {reason: 1},
        "market": "http://127.0.0.1:8000/market/deepseek/deepseek-chat/",
    }
    assert ids(rank([*removed, good], _request(request_), **kwargs)) == [2]


def test_every_reason_in_one_503_in_the_documented_order():
    rows = [
        cand(1, health="suspended"),
        cand(2, health="cooling_down", ask_in=9.0),  # cooling_down comes before max_price
        cand(3),
        cand(4, capped=True),
        cand(5, ask_in=0.45),
        cand(6, provider="alt"),
        cand(7),
        cand(8, trusted=True, ttft=900, tps=90),
        cand(9, trusted=True, ttft=100, tps=10),
        cand(10, trusted=True),
        cand(11, trusted=True, ttft=100, tps=90, ask_out=1.6),
    ]
    prefs = _request(
        {
            "X_Max_Price": "0.40",
            "max_output_price_nusd": int(1.5 * USD),
            "X_Provider_Only": "deepseek",
            "X_Privacy_Mode": "trusted_only",
            "X_Hard_Max_TTFT_Ms": "500",
            "X_Hard_Min_Throughput_TPS": "50",
        }
    )
    with pytest.raises(GatewayError) as caught:
        rank(rows, prefs, full={3}, dead=set(), offline={"suspended": 2, "paused": 1})
    assert list(caught.value.extra["constraints"].items()) == [
        ("suspended", 3),
        ("paused", 1),
        ("cooling_down", 1),
        ("capacity", 1),
        ("daily_spend_cap", 1),
        ("max_price", 1),
        ("max_output_price", 1),
        ("provider_only", 1),
        ("privacy_mode", 1),
        ("hard_max_ttft_ms", 1),
        ("hard_min_throughput_tps", 1),
        ("unmeasured", 1),
    ]


def test_a_model_with_no_listing_at_all_is_a_503_naming_the_model():
    with pytest.raises(GatewayError) as caught:
        rank([], Preferences(), model_id="minimax/minimax-m2.5")
    assert caught.value.extra == {
        "constraints": {},
        "market": "http://127.0.0.1:8000/market/minimax/minimax-m2.5/",
    }


def test_only_market_only_is_a_routing_strategy():
    with pytest.raises(GatewayError) as caught:
        preferences(headers(Routing_Strategy="cheapest"), None)
    assert caught.value.status == 400
    assert "Routing-Strategy" in caught.value.message
    assert preferences(headers(Routing_Strategy="market-only"), None) == Preferences()


CHAT = "deepseek/deepseek-chat"
REASONER = "deepseek/deepseek-reasoner"
HIGHSPEED = "minimax/minimax-m2.5-highspeed"
TURBO = "minimax/speech-02-turbo"
CATALOGUE = {
    CHAT: {"model_id": CHAT, "modality": "chat", "platform_default": True},
    REASONER: {"model_id": REASONER, "modality": "chat", "platform_default": False},
    HIGHSPEED: {"model_id": HIGHSPEED, "modality": "chat", "platform_default": False},
    TURBO: {"model_id": TURBO, "modality": "speech", "platform_default": True},
}
UNKNOWN = (
    "Unknown model 'gpt-4o'. GET /v1/models lists the models you can use; the Quick start "
    "shows one that is live now: http://127.0.0.1:8000/dashboard/quickstart/"
)


def resolved(name, profile=None, catalogue=CATALOGUE, modality="chat"):
    entry, how = resolve_model(name, profile, catalogue, modality=modality)
    return entry["model_id"], how


def test_aliases_and_the_default_model_apply_only_when_enabled():
    catalogue = {CHAT: {"model_id": CHAT, "modality": "chat"}}
    profile = {
        "aliases_enabled": True,
        "model_aliases": {"gpt-4o": CHAT},
        "default_model": CHAT,
        "strict_models": True,
    }
    assert resolved("gpt-4o", profile, catalogue) == (CHAT, "profile_alias")
    assert resolved("anything", profile, catalogue) == (CHAT, "profile_default")
    with pytest.raises(GatewayError) as caught:
        resolve_model("gpt-4o", {**profile, "aliases_enabled": False}, catalogue)
    assert caught.value.status == 400
    assert caught.value.message == UNKNOWN


def test_a_catalogue_id_resolves_to_itself_with_no_alias():
    assert resolved(CHAT) == (CHAT, None)
    assert resolved(REASONER, {"strict_models": True}) == (REASONER, None)


def test_names_resolve_profile_alias_then_profile_default_then_builtin_then_platform_default():
    profile = {
        "aliases_enabled": True,
        "model_aliases": {"gpt-4o": HIGHSPEED},
        "default_model": REASONER,
    }
    # 1. the profile's own alias wins over the built-in one for the same name
    assert resolved("gpt-4o", profile) == (HIGHSPEED, "profile_alias")
    # 2. the profile's default model takes every other unknown name, built-in aliases included
    assert resolved("gpt-4o-mini", profile) == (REASONER, "profile_default")
    assert resolved("no-such-model", profile) == (REASONER, "profile_default")
    # 3. without them: the built-in aliases (reasoning names to the reasoner)
    assert resolved("gpt-4o") == (CHAT, "builtin_alias")
    assert resolved("claude-sonnet-4-6") == (CHAT, "builtin_alias")
    assert resolved("o3") == (REASONER, "builtin_alias")
    assert resolved("claude-opus-4") == (REASONER, "builtin_alias")
    # 4. then the platform default of the endpoint's modality
    assert resolved("no-such-model") == (CHAT, "platform_default")
    assert resolved("no-such-voice", modality="speech") == (TURBO, "platform_default")
    assert resolved("tts-1", modality="speech") == (TURBO, "builtin_alias")


def test_a_profile_default_of_another_modality_leaves_the_name_to_the_platform():
    profile = {"aliases_enabled": True, "model_aliases": {}, "default_model": CHAT}
    assert resolved("no-such-voice", profile, modality="speech") == (TURBO, "platform_default")


def test_a_strict_profile_keeps_unknown_names_a_400():
    for name in ("gpt-4o", "claude-sonnet-4-6", "no-such-model"):
        with pytest.raises(GatewayError) as caught:
            resolve_model(name, {"strict_models": True}, CATALOGUE, modality="chat")
        assert caught.value.status == 400
        assert caught.value.message.startswith(f"Unknown model '{name}'.")


def test_an_alias_whose_target_is_not_in_the_catalogue_is_skipped():
    catalogue = {name: entry for name, entry in CATALOGUE.items() if name != REASONER}
    # o3's target is missing: not an alias here, so the name is unknown → the platform default
    assert resolved("o3", catalogue=catalogue) == (CHAT, "platform_default")
    no_default = {CHAT: {**CATALOGUE[CHAT], "platform_default": False}}
    assert resolved("gpt-4o", catalogue=no_default) == (CHAT, "builtin_alias")
    with pytest.raises(GatewayError) as caught:
        resolve_model("no-such-model", None, no_default, modality="chat")
    assert caught.value.status == 400


def test_every_builtin_alias_names_a_model_of_the_catalogue_module():
    from gateway.model_aliases import BUILTIN
    from market.catalogue import MODELS

    known = {spec.model_id for spec in MODELS}
    # embo-01 and the reranker come with the embeddings and rerank endpoints (issue 18)
    pending = {"minimax/embo-01", "jina/jina-reranker-v2-base-multilingual"}
    assert set(BUILTIN.values()) <= known | pending


def test_the_alias_header_says_what_happened_and_cannot_be_broken_by_the_name():
    from gateway.model_aliases import header

    assert header("gpt-4o", CHAT, "builtin_alias") == [
        (b"x-df-model-alias", b"gpt-4o -> deepseek/deepseek-chat"),
        (b"x-df-model-alias-source", b"builtin_alias"),
    ]
    assert header("a\r\nb é%", CHAT, "platform_default")[0] == (
        b"x-df-model-alias",
        b"a%0D%0Ab%20%C3%A9%25 -> deepseek/deepseek-chat",
    )
