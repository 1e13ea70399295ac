"""What a gateway process leaves behind if it dies: its lease, and the progress of its streams."""

from django.db import models


class GatewayProcess(models.Model):
    """A running gateway process's lease, renewed while it lives (gateway/process.py). One whose
    lease has run out is dead: what it left is settled by whoever reaps it (gateway/reaper.py)."""

    id = models.CharField(primary_key=True, max_length=8)  # the process id in its request ids
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"gateway process {self.id} ({self.host}:{self.pid})"


class StreamCheckpoint(models.Model):
    """A stream's settlement as it would be if it ended now, rewritten as it delivers (about once
    a second, gateway/checkpoints.py), so a crash bills what the buyer received."""

    request_id = models.CharField(primary_key=True, max_length=100)
    process_id = models.CharField(max_length=8, db_index=True)
    settlement = models.JSONField()  # billing.settlement_data.Settlement's fields
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"checkpoint of {self.request_id}"
