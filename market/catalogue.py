"""The contract's catalogue, written once: its providers and models, and the load that writes them.

`manage.py catalogue_load` loads it for production with the providers' real API base URLs;
`seed_demo` (market/demo.py) loads the same rows pointed at the simulated upstream. Model ids, list
prices, context and capabilities are the contract's table ("Models & Pricing") exactly; speech is
"-" there, so its per-million-character prices are the operator's, in line with MiniMax's own rates.

Upstream base URLs and model names are the providers' published ones (docs/catalogue.md): DeepSeek
answers the OpenAI wire format at https://api.deepseek.com (`/chat/completions`, `/models`),
MiniMax at https://api.minimax.io/v1 (`/chat/completions`, `/models`, T2A v2 at `/t2a_v2` and
its native embeddings at `/embeddings`), Jina AI at https://api.jina.ai/v1 (`/rerank`, billed per
token of the pairs it scores).
DeepSeek retired the names `deepseek-chat` and `deepseek-reasoner` on 2026-07-24; both are now
`deepseek-v4-flash`, without and with thinking mode (which is on unless the request turns it off).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from billing.money import usd_to_nusd
from market.models import CatalogModel, Modality, PriceUnit, Provider, WireFormat


@dataclass(frozen=True)
class ProviderSpec:
    slug: str
    name: str
    base_url: str
    wire_format: str


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    provider: str
    upstream_name: str
    context_tokens: int | None
    capabilities: tuple[str, ...]
    modality: str
    price_unit: str
    list_input_usd: str  # USD per million units, as in the contract's table
    list_output_usd: str
    # Set on every upstream request body for the model, over the buyer's fields.
    upstream_params: dict = field(default_factory=dict, hash=False)


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec("deepseek", "DeepSeek", "https://api.deepseek.com", WireFormat.OPENAI),
    ProviderSpec("minimax", "MiniMax", "https://api.minimax.io/v1", WireFormat.OPENAI),
    # Jina's rerank API (`/rerank`) is its own shape; the adapter is chosen by the model's modality
    # (gateway/upstream/jina.py), and the key is a Bearer token as on OpenAI's wire.
    ProviderSpec("jina", "Jina AI", "https://api.jina.ai/v1", WireFormat.OPENAI),
)

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "deepseek/deepseek-chat", "deepseek", "deepseek-v4-flash", 128_000, ("chat", "code"),
        Modality.CHAT, PriceUnit.TOKEN, "0.50", "1.50", {"thinking": {"type": "disabled"}},
    ),
    ModelSpec(
        "deepseek/deepseek-reasoner", "deepseek", "deepseek-v4-flash", 128_000, ("reasoning",),
        Modality.CHAT, PriceUnit.TOKEN, "2.00", "8.00", {"thinking": {"type": "enabled"}},
    ),
    ModelSpec(
        "minimax/minimax-m2.5", "minimax", "MiniMax-M2.5", 1_000_000, ("chat",),
        Modality.CHAT, PriceUnit.TOKEN, "0.80", "2.40",
    ),
    ModelSpec(
        "minimax/minimax-m2.5-highspeed", "minimax", "MiniMax-M2.5-highspeed", 1_000_000,
        ("chat", "fast"), Modality.CHAT, PriceUnit.TOKEN, "0.40", "1.20",
    ),
    ModelSpec(
        "minimax/speech-02-hd", "minimax", "speech-02-hd", None, ("tts", "hd"),
        Modality.SPEECH, PriceUnit.CHARACTER, "100.00", "0",
    ),
    ModelSpec(
        "minimax/speech-02-turbo", "minimax", "speech-02-turbo", None, ("tts", "fast"),
        Modality.SPEECH, PriceUnit.CHARACTER, "60.00", "0",
    ),
    ModelSpec(
        "jina/jina-reranker-v2-base-multilingual", "jina", "jina-reranker-v2-base-multilingual",
        None, ("rerank", "multilingual"), Modality.RERANK, PriceUnit.TOKEN, "0.05", "0",
    ),
    ModelSpec(  # MiniMax's list price, not the contract's (docs/catalogue.md, "Embeddings")
        "minimax/embo-01", "minimax", "embo-01", None, ("embedding",),
        Modality.EMBEDDING, PriceUnit.TOKEN, "0.07", "0",
    ),
)  # fmt: skip

# Where unknown model names go, per modality (CatalogModel.platform_default): the cheap, general
# model of each. Set by the load only when it creates the model and its modality has no default
# yet; after that the default is the operator's (admin action "Make platform default").
PLATFORM_DEFAULTS = {
    "chat": "deepseek/deepseek-chat",
    "embedding": "minimax/embo-01",
    "rerank": "jina/jina-reranker-v2-base-multilingual",
    "speech": "minimax/speech-02-turbo",
}


def provider_fields(spec: ProviderSpec, *, base_url: str | None = None) -> dict:
    return {
        "name": spec.name,
        "base_url": base_url or spec.base_url,
        "wire_format": str(spec.wire_format),
    }


def model_fields(spec: ModelSpec, *, provider: Provider) -> dict:
    return {
        "provider_id": provider.pk,
        "upstream_name": spec.upstream_name,
        "upstream_params": dict(spec.upstream_params),
        "context_tokens": spec.context_tokens,
        "capabilities": list(spec.capabilities),
        "modality": str(spec.modality),
        "price_unit": str(spec.price_unit),
        "list_input_nusd": usd_to_nusd(spec.list_input_usd),
        "list_output_nusd": usd_to_nusd(spec.list_output_usd),
    }


@dataclass
class CatalogueLoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    # Rows that differ from the contract and were left as they are (no `update`): row -> fields.
    kept: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.kept)} kept with local edits, {len(self.unchanged)} unchanged"
        )


def _differences(row, wanted: dict) -> list[str]:
    return [name for name, value in wanted.items() if getattr(row, name) != value]


def _row_load(
    model, *, key: dict, wanted: dict, label: str, update: bool, report: CatalogueLoadReport,
    progress: Callable[[str], None],
):  # fmt: skip
    row = model.objects.select_for_update().filter(**key).first()
    if row is None:
        row = model.objects.create(**key, **wanted)
        report.created.append(label)
        progress(f"{label}: created")
        return row
    differences = _differences(row, wanted)
    if not differences:
        report.unchanged.append(label)
        progress(f"{label}: unchanged")
    elif update:
        for name in differences:
            setattr(row, name, wanted[name])
        row.save(update_fields=differences)
        report.updated.append(label)
        progress(f"{label}: updated {', '.join(differences)}")
    else:
        report.kept[label] = differences
        progress(f"{label}: kept local {', '.join(differences)} (--update restores the contract's)")
    return row


def catalogue_load(
    *,
    update: bool = False,
    base_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CatalogueLoadReport:
    """Create the contract's providers and models that are missing; report the rest.

    A row that exists and differs from the contract (an operator changed a price, a base URL or
    an upstream name in the admin) is left alone unless `update` is true. Whether a model is
    active and its display name are the operator's and never touched. `base_url` points every
    provider at one upstream instead of the real ones (the demo's simulator). One transaction;
    the rows are locked while they are compared, so two loads at once cannot both create a row.
    """
    with transaction.atomic():
        return _load(update=update, base_url=base_url, progress=progress)


def _load(
    *, update: bool, base_url: str | None, progress: Callable[[str], None]
) -> CatalogueLoadReport:
    report = CatalogueLoadReport()
    providers: dict[str, Provider] = {}
    for spec in PROVIDERS:
        providers[spec.slug] = _row_load(
            Provider,
            key={"slug": spec.slug},
            wanted=provider_fields(spec, base_url=base_url),
            label=f"provider {spec.slug}",
            update=update,
            report=report,
            progress=progress,
        )
    for model_spec in MODELS:
        row = _row_load(
            CatalogModel,
            key={"model_id": model_spec.model_id},
            wanted=model_fields(model_spec, provider=providers[model_spec.provider]),
            label=f"model {model_spec.model_id}",
            update=update,
            report=report,
            progress=progress,
        )
        if f"model {model_spec.model_id}" in report.created:
            _default_if_none(row)
    return report


def _default_if_none(row: CatalogModel) -> None:
    """A newly created model becomes its modality's platform default if it is the one named in
    PLATFORM_DEFAULTS and the modality has none."""
    if PLATFORM_DEFAULTS.get(row.modality) != row.model_id:
        return
    if CatalogModel.objects.filter(modality=row.modality, platform_default=True).exists():
        return
    row.platform_default = True
    row.save(update_fields=["platform_default"])
