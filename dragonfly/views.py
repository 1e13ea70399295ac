"""Site-wide views: the landing page, liveness, readiness and Prometheus metrics."""

import ipaddress
from functools import cache

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from observability import metrics as _metrics  # noqa: F401 - registers the gateway metrics
from redis_clients.clients import get_redis_short


def home(request):
    return render(request, "home.html")


@never_cache
def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


@never_cache
def readyz(request):
    """503 only without the database (no request can be held or billed). Redis failing is 200 with
    "degraded": the gateway serves without it (docs/gateway.md, "When Redis is down"), and a load
    balancer that took every process out of rotation would turn a Redis outage into a full one."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_redis_short().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    ready = checks["database"] == "ok"
    degraded = checks["redis"] != "ok"
    return JsonResponse(
        {"ready": ready, "degraded": degraded, "checks": checks}, status=200 if ready else 503
    )


@cache
def _internal_networks(entries: tuple[str, ...]) -> tuple:
    """DRAGONFLY_METRICS_ALLOWED_IPS: addresses or networks ("127.0.0.1", "10.0.0.0/8")."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def is_internal_address(client_ip: str) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    networks = _internal_networks(tuple(settings.DRAGONFLY_METRICS_ALLOWED_IPS))
    return any(address in network for network in networks)


@never_cache
def metrics(request):
    user = getattr(request, "user", None)
    is_operator = user is not None and user.is_authenticated and user.is_staff
    if not is_operator and not is_internal_address(request.META.get("REMOTE_ADDR", "")):
        return HttpResponseForbidden("metrics are for operators and internal addresses")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
