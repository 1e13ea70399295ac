import pytest


@pytest.mark.django_db
def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert len(response["X-Request-Id"]) == 32


@pytest.mark.django_db
def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "degraded": False,
        "checks": {"database": "ok", "redis": "ok"},
    }


@pytest.mark.django_db
def test_readyz_reports_an_unreachable_redis_as_degraded_but_ready(client, settings):
    # The gateway serves without Redis (docs/gateway.md), so load balancers must keep routing to it.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "degraded": True,
        "checks": {"database": "ok", "redis": "down: ConnectionError"},
    }


@pytest.mark.django_db
def test_readyz_is_not_ready_without_the_database(client, monkeypatch):
    from dragonfly import views

    class Broken:
        def cursor(self):
            raise RuntimeError("database down")

    monkeypatch.setattr(views, "connection", Broken())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "degraded": False,
        "checks": {"database": "error: RuntimeError", "redis": "ok"},
    }


@pytest.mark.django_db
def test_metrics_are_served_to_internal_addresses(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"dragonfly_gateway_requests_total" in response.content


@pytest.mark.django_db
def test_metrics_are_refused_to_outside_addresses(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_whatever_host_they_are_asked_by(client, path):
    # A container healthcheck or load balancer asks by address (web1:8000), not by the site's name.
    response = client.get(path, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert len(response["X-Request-Id"]) == 32


@pytest.mark.django_db
def test_pages_still_refuse_an_unknown_host(client):
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db
def test_metrics_accept_an_internal_network_by_address(client, settings):
    settings.DRAGONFLY_METRICS_ALLOWED_IPS = ["127.0.0.1", "10.0.0.0/8"]
    response = client.get("/metrics", REMOTE_ADDR="10.9.8.7", HTTP_HOST="web1:8000")
    assert response.status_code == 200
    assert b"dragonfly_gateway_requests_total" in response.content


@pytest.mark.django_db
def test_metrics_outside_the_networks_are_refused(client, settings):
    settings.DRAGONFLY_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    response = client.get("/metrics", REMOTE_ADDR="11.0.0.1")
    assert response.status_code == 403
    assert b"dragonfly_gateway" not in response.content


@pytest.mark.django_db
def test_metrics_are_served_to_operators_from_anywhere(client, django_user_model):
    operator = django_user_model.objects.create_user(
        email="ops@example.com", password="x-long-password", is_staff=True
    )
    client.force_login(operator)
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200


@pytest.mark.django_db
def test_metrics_are_refused_to_a_signed_in_buyer_outside(client, django_user_model):
    buyer = django_user_model.objects.create_user(
        email="buyer@example.com", password="x-long-password"
    )
    client.force_login(buyer)
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
