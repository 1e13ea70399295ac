"""Site-wide views: the landing page, liveness, readiness and Prometheus metrics."""

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dragonfly import metrics as _metrics  # noqa: F401 - registers the gateway metrics
from dragonfly.redis import get_redis


def home(request):
    return render(request, "home.html")


@never_cache
def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


@never_cache
def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


@never_cache
def metrics(request):
    client_ip = request.META.get("REMOTE_ADDR", "")
    if not (request.user.is_authenticated and request.user.is_staff) and (
        client_ip not in settings.DRAGONFLY_METRICS_ALLOWED_IPS
    ):
        return HttpResponseForbidden("metrics are for operators and internal addresses")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
