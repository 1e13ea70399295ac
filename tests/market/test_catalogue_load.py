"""`manage.py catalogue_load`: the contract's catalogue for production, idempotent, edits kept."""

import io

import pytest
from django.core.management import call_command

from accounts.models import User
from market.demo import catalogue_seed
from market.models import CatalogModel, Listing, Provider

# The contract's "Models & Pricing" table, as it reads: model id, input $/M, output $/M, context,
# capabilities. Speech is "-" there (its prices are the operator's; checked separately below).
CONTRACT = {
    "deepseek/deepseek-chat": ("0.50", "1.50", "128K", "Chat, Code"),
    "deepseek/deepseek-reasoner": ("2.00", "8.00", "128K", "Reasoning"),
    "minimax/minimax-m2.5": ("0.80", "2.40", "1M", "Chat"),
    "minimax/minimax-m2.5-highspeed": ("0.40", "1.20", "1M", "Chat (fast)"),
    "minimax/speech-02-hd": (None, None, None, "TTS (HD)"),
    "minimax/speech-02-turbo": (None, None, None, "TTS (fast)"),
}
CONTEXT = {"128K": 128_000, "1M": 1_000_000, None: None}
# Beyond the contract's table, at their providers' published list prices (docs/catalogue.md):
# provider, upstream name, context, capabilities, modality, unit, list input and output (nano-USD
# per million units).
BEYOND = {
    "minimax/embo-01": (
        "minimax", "embo-01", None, ["embedding"], "embedding", "token", 70_000_000, 0,
    ),
    "jina/jina-reranker-v2-base-multilingual": (
        "jina", "jina-reranker-v2-base-multilingual", None, ["rerank", "multilingual"], "rerank",
        "token", 50_000_000, 0,
    ),
}  # fmt: skip


def _capabilities(text):
    return [part.strip(" ()").lower() for part in text.replace("(", ",").split(",")]


def _nusd(usd):
    dollars, cents = usd.split(".")
    return int(dollars) * 1_000_000_000 + int(cents) * 10_000_000


def _load(*args):
    out = io.StringIO()
    call_command("catalogue_load", *args, stdout=out)
    return out.getvalue()


def _rows():
    return {
        m.model_id: (
            m.provider.slug,
            m.upstream_name,
            m.context_tokens,
            m.capabilities,
            m.modality,
            m.price_unit,
            m.list_input_nusd,
            m.list_output_nusd,
        )
        for m in CatalogModel.objects.select_related("provider")
    }


def test_it_loads_the_contracts_models_with_the_real_providers_and_nothing_else(db):
    output = _load()

    assert dict(Provider.objects.values_list("slug", "base_url")) == {
        "deepseek": "https://api.deepseek.com",
        "minimax": "https://api.minimax.io/v1",
        "jina": "https://api.jina.ai/v1",
    }
    rows = _rows()
    assert sorted(rows) == sorted([*CONTRACT, *BEYOND])
    for model_id, row in BEYOND.items():
        assert rows[model_id] == row
    for model_id, (price_in, price_out, context, capabilities) in CONTRACT.items():
        provider, _upstream, context_tokens, caps, modality, unit, list_in, list_out = rows[
            model_id
        ]
        assert provider == model_id.split("/")[0]
        assert caps == _capabilities(capabilities)
        assert context_tokens == CONTEXT[context]
        if price_in is not None:
            assert (list_in, list_out, unit, modality) == (
                _nusd(price_in),
                _nusd(price_out),
                "token",
                "chat",
            )
        else:
            assert (unit, modality, list_out) == ("character", "speech", 0)
            assert list_in > 0
    assert {m: r[1] for m, r in rows.items()} == {
        "deepseek/deepseek-chat": "deepseek-v4-flash",
        "deepseek/deepseek-reasoner": "deepseek-v4-flash",
        "minimax/minimax-m2.5": "MiniMax-M2.5",
        "minimax/minimax-m2.5-highspeed": "MiniMax-M2.5-highspeed",
        "minimax/speech-02-hd": "speech-02-hd",
        "minimax/speech-02-turbo": "speech-02-turbo",
        "jina/jina-reranker-v2-base-multilingual": "jina-reranker-v2-base-multilingual",
        "minimax/embo-01": "embo-01",
    }
    assert (User.objects.count(), Listing.objects.count()) == (0, 0)
    assert "provider deepseek: created" in output
    assert "model minimax/speech-02-turbo: created" in output
    assert (
        "Catalogue loaded: 11 created, 0 updated, 0 kept with local edits, 0 unchanged." in output
    )


def test_a_second_run_changes_nothing_and_says_so(db):
    _load()
    before = _rows()
    output = _load()
    assert _rows() == before
    assert "created" not in output.replace("0 created", "")
    assert (
        "Nothing to change: 0 created, 0 updated, 0 kept with local edits, 11 unchanged." in output
    )


def test_an_operators_edits_are_kept_and_reported_until_update(db):
    _load()
    CatalogModel.objects.filter(model_id="deepseek/deepseek-chat").update(
        list_input_nusd=450_000_000, is_active=False, display_name="DeepSeek V3"
    )
    Provider.objects.filter(slug="minimax").update(base_url="https://api.minimaxi.com/v1")

    output = _load()
    chat = CatalogModel.objects.get(model_id="deepseek/deepseek-chat")
    assert chat.list_input_nusd == 450_000_000
    assert Provider.objects.get(slug="minimax").base_url == "https://api.minimaxi.com/v1"
    assert "model deepseek/deepseek-chat: kept local list_input_nusd" in output
    assert "provider minimax: kept local base_url" in output
    assert "2 rows differ from the contract and were kept as they are; run with --update" in output
    assert (
        "Nothing to change: 0 created, 0 updated, 2 kept with local edits, 9 unchanged." in output
    )

    output = _load("--update")
    chat.refresh_from_db()
    assert chat.list_input_nusd == 500_000_000
    # Whether a model is offered and its display name stay the operator's, even with --update.
    assert (chat.is_active, chat.display_name) == (False, "DeepSeek V3")
    assert Provider.objects.get(slug="minimax").base_url == "https://api.minimax.io/v1"
    assert "model deepseek/deepseek-chat: updated list_input_nusd" in output
    assert "Catalogue loaded: 0 created, 2 updated, 0 kept with local edits, 9 unchanged." in output


def test_the_demo_loads_the_same_catalogue_pointed_at_the_simulator(db):
    _load()
    production = _rows()
    catalogue_seed(upstream_url="http://127.0.0.1:9100")
    assert _rows() == production
    assert set(Provider.objects.values_list("base_url", flat=True)) == {"http://127.0.0.1:9100/v1"}


def test_upstream_params_must_be_an_object_that_leaves_the_gateways_fields_alone(db):
    import pytest
    from django.core.exceptions import ValidationError

    _load()
    chat = CatalogModel.objects.get(model_id="deepseek/deepseek-chat")
    for bad, message in (
        (["thinking"], "Give a JSON object"),
        ({"stream": True, "model": "x"}, "The gateway sets model, stream itself"),
    ):
        chat.upstream_params = bad
        with pytest.raises(ValidationError, match=message):
            chat.full_clean()
    chat.refresh_from_db()
    assert chat.upstream_params == {"thinking": {"type": "disabled"}}
    chat.upstream_params = {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}
    chat.full_clean()


def test_a_new_catalogue_gets_platform_defaults_and_the_operators_choice_is_kept(db):
    from market.catalogue import catalogue_load
    from market.services import catalogue_model_default_set

    catalogue_load()
    defaults = dict(
        CatalogModel.objects.filter(platform_default=True).values_list("modality", "model_id")
    )
    assert defaults == {
        "chat": "deepseek/deepseek-chat",
        "embedding": "minimax/embo-01",
        "rerank": "jina/jina-reranker-v2-base-multilingual",
        "speech": "minimax/speech-02-turbo",
    }

    catalogue_model_default_set(model_id="minimax/minimax-m2.5-highspeed")
    CatalogModel.objects.filter(modality="speech").update(platform_default=False)  # cleared
    catalogue_load(update=True)
    defaults = dict(
        CatalogModel.objects.filter(platform_default=True).values_list("modality", "model_id")
    )
    assert defaults == {
        "chat": "minimax/minimax-m2.5-highspeed",
        "embedding": "minimax/embo-01",
        "rerank": "jina/jina-reranker-v2-base-multilingual",
    }


def test_two_defaults_for_one_modality_are_refused_by_the_database(db):
    from django.db import IntegrityError, transaction

    from market.catalogue import catalogue_load

    catalogue_load()
    with pytest.raises(IntegrityError), transaction.atomic():
        CatalogModel.objects.filter(model_id="deepseek/deepseek-reasoner").update(
            platform_default=True
        )
    assert list(
        CatalogModel.objects.filter(platform_default=True, modality="chat").values_list(
            "model_id", flat=True
        )
    ) == ["deepseek/deepseek-chat"]
