"""The operator audit: record who changed a traced field, when, from what and to what."""

from django.db import models

from accounts.models import OperatorAudit


def audit_changes_record(
    *, actor, obj: models.Model, before: dict[str, object], fields: list[str], via: str = ""
) -> list[OperatorAudit]:
    """One entry per field of `fields` whose value on `obj` differs from `before` (the row as it
    was, empty for a new object). `actor` is the staff user, or None for a command (`via` names
    it). Call it inside the transaction that saves `obj`, so the change and its record commit
    together."""
    label = getattr(actor, "email", "") or via or "unknown"
    entries = [
        OperatorAudit(
            actor=actor if getattr(actor, "pk", None) else None,
            actor_label=label[:254],
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            field=field,
            old_value="" if before.get(field) is None else str(before[field]),
            new_value="" if getattr(obj, field) is None else str(getattr(obj, field)),
        )
        for field in fields
        if before.get(field) != getattr(obj, field)
    ]
    return OperatorAudit.objects.bulk_create(entries)
