"""Reporting a settlement whose cost exceeded what the buyer could cover (its overrun)."""

import logging

from observability.metrics import SETTLEMENT_OVERRUN_NUSD, SETTLEMENT_OVERRUNS

logger = logging.getLogger("billing.services.settlement")


def overrun_report(*, request_id: str, overrun_nusd: int) -> None:
    """A request cost more than its hold (the hold is meant to be an upper bound, so this is a
    defect or an upstream that ignored max_tokens): logged with the request id and counted in
    /metrics; operators list them in the admin (usage records, "Overrun" filter)."""
    logger.warning("overrun: request %s cost %d nusd above its hold", request_id, overrun_nusd)
    SETTLEMENT_OVERRUNS.inc()
    SETTLEMENT_OVERRUN_NUSD.inc(overrun_nusd)
