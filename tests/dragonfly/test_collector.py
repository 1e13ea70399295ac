"""The cyclic garbage collector of a serving Daphne process (dragonfly/daphne.py): what was loaded at
start is frozen, the objects of the requests in flight do not set off young collections, and every
collection's pause is on /metrics (observability/gc_pauses.py). A fresh interpreter, since
freezing, thresholds and collector callbacks are process-wide."""

import json
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

SCRIPT = """
import gc, json
from dragonfly.daphne import YOUNG_GENERATION_THRESHOLD, _collector_for_serving

def young_collections_while_keeping(count):
    runs = []
    def counted(phase, info):
        if phase == "start" and info["generation"] == 0:
            runs.append(1)
    gc.callbacks.append(counted)
    kept = [{"n": i} for i in range(count)]  # live containers, as in-flight requests hold
    gc.callbacks.remove(counted)
    del kept
    return len(runs)

before = gc.get_threshold()
with_default = young_collections_while_keeping(40_000)
_collector_for_serving()
serving = young_collections_while_keeping(40_000)
gc.collect(0)
gc.collect(0)
gc.collect(2)
from prometheus_client import generate_latest
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "with_default": with_default,
    "serving": serving,
    "limit": YOUNG_GENERATION_THRESHOLD,
    "metrics": generate_latest().decode(),
}))
"""


def test_a_serving_process_freezes_startup_objects_and_keeps_young_collections_rare():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"][0] < 40_000  # Python's own: 700 (2,000 from 3.13)
    assert seen["after"] == [seen["limit"], *seen["before"][1:]]  # older generations as they were
    assert seen["frozen"] > 10_000  # the interpreter, Twisted and Daphne at least
    # 40,000 live objects (a wave of 256 requests in flight holds about that many): many young
    # collections at Python's threshold (57 at 700), none once serving.
    assert seen["with_default"] >= 3
    assert seen["serving"] == 0
    # The three collections since: two young, one full, each timed.
    pauses = {
        sample.labels["generation"]: sample.value
        for family in text_string_to_metric_families(seen["metrics"])
        if family.name == "dragonfly_gc_pause_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert pauses == {"0": 2.0, "1": 0.0, "2": 1.0}
    assert 'dragonfly_gc_pause_seconds_sum{generation="2"} 0.0\n' not in seen["metrics"]
