"""docker/compose.yaml, the Dockerfile and the nginx template, checked without Docker: the compose
file's structure (loaded as YAML), and nginx's own syntax check of the config compose renders."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.topology import NGINX, NGINX_RENDER, NGINX_TEMPLATE, ROOT, certificate_make

pytestmark = pytest.mark.deploy

DOCKER = ROOT / "docker"
APP_SERVICES = ("web", "api", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def template_variables() -> set[str]:
    return set(re.findall(r"\$\{(DRAGONFLY_[A-Z0-9_]+)\}", NGINX_TEMPLATE.read_text()))


def test_web_worker_and_beat_start_only_after_the_one_shot_migrate(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    # Only migrate migrates: the entrypoint's web and api branch neither migrates nor collects.
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    web_branch = entrypoint.split("  web|api)")[1].split(";;")[0]
    assert "migrate" not in web_branch
    assert "collectstatic" not in web_branch
    branches = re.findall(r"^  ([a-z|]+)\)$", entrypoint, re.MULTILINE)
    for name in ("migrate", *APP_SERVICES):
        command = services[name]["command"][0]
        assert any(command in branch.split("|") for branch in branches), name


def test_web_and_api_scale_by_name_and_beat_stays_single(compose):
    services = compose["services"]
    assert not [name for name in services if re.fullmatch(r"(web|api)\d+", name)]
    for name in ("web", "api"):
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], name  # reached through nginx only, by the name
    assert services["web"]["deploy"]["replicas"] == "${DRAGONFLY_WEB_REPLICAS:-2}"
    assert services["api"]["deploy"]["replicas"] == "${DRAGONFLY_API_REPLICAS:-2}"
    assert services["api"]["command"] == ["api"]
    # Every process that serves /v1 is counted: the api ones (nginx sends /v1 nowhere else).
    for name in APP_SERVICES:
        processes = services[name]["environment"]["DRAGONFLY_GATEWAY_PROCESSES"]
        assert processes == "${DRAGONFLY_API_REPLICAS:-2}", name
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "container_name" not in services["beat"]
    nginx = services["nginx"]["environment"]
    # edge.sh resolves them to the replicas.
    assert nginx["DRAGONFLY_WEB_UPSTREAM"] == "web:8000"
    assert nginx["DRAGONFLY_API_UPSTREAM"] == "api:8000"
    assert set(services["nginx"]["depends_on"]) == {"web", "api"}


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            continue  # one-shot: its exit status is what the others wait for
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name


def test_compose_and_edge_sh_fill_exactly_the_variables_of_the_nginx_template(compose):
    nginx = compose["services"]["nginx"]
    # edge.sh turns the services' names into the replicas' addresses (DRAGONFLY_*_SERVERS).
    upstreams = {"DRAGONFLY_WEB_UPSTREAM", "DRAGONFLY_API_UPSTREAM"}
    filled = set(nginx["environment"]) - upstreams | {
        "DRAGONFLY_WEB_SERVERS",
        "DRAGONFLY_API_SERVERS",
    }
    assert filled == template_variables()
    edge_sh = (DOCKER / "nginx" / "edge.sh").read_text()
    assert all(name in edge_sh for name in upstreams)
    edge_stage = (DOCKER / "Dockerfile").read_text().split(" AS edge")[1]
    assert 'ENTRYPOINT ["/etc/dragonfly/nginx/edge.sh", ' in edge_stage
    assert nginx["build"]["target"] == "edge"
    assert nginx["environment"]["DRAGONFLY_TLS_DIR"] == "/etc/dragonfly/tls"
    assert any(v.endswith(":/etc/dragonfly/tls:ro") for v in nginx["volumes"])


def test_static_files_are_collected_into_the_image_with_hashed_names(compose):
    dockerfile = (DOCKER / "Dockerfile").read_text()
    app_stage = dockerfile.split(" AS app")[1].split(" AS edge")[0]
    assert "DRAGONFLY_STATIC_MANIFEST=1" in app_stage
    assert "manage.py collectstatic" in app_stage
    edge_stage = dockerfile.split(" AS edge")[1]
    assert "apt-get install" in edge_stage
    assert " nginx " in edge_stage
    assert "COPY --from=app /app/staticfiles /srv/static" in edge_stage
    assert compose["services"]["nginx"]["environment"]["DRAGONFLY_STATIC_ROOT"] == "/srv/static"
    assert compose["x-app"]["build"]["target"] == "app"


def _render(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    variables = dict(compose["services"]["nginx"]["environment"])
    variables["DRAGONFLY_BASE_URL"] = "https://dragonfly.example.com"
    variables["DRAGONFLY_WEB_SERVERS"] = "server 172.18.0.5:8000; server 172.18.0.6:8000;"
    variables["DRAGONFLY_API_SERVERS"] = "server 172.18.0.7:8000; server 172.18.0.8:8000;"
    variables.update(overrides)
    return subprocess.run(
        [str(NGINX_RENDER), str(NGINX_TEMPLATE), str(tmp_path / "dragonfly.conf")],
        env={"PATH": os.environ["PATH"], **variables},
        capture_output=True,
        text=True,
    )


def test_the_config_compose_renders_passes_nginx_own_check(tmp_path):
    certificate_make(tmp_path / "tls", "dragonfly.example.com")
    assert _render(tmp_path, DRAGONFLY_TLS_DIR=str(tmp_path / "tls")).returncode == 0
    site = (tmp_path / "dragonfly.conf").read_text()
    assert not re.search(r"\$\{DRAGONFLY_[A-Z]", site)
    web = site.split("upstream dragonfly_web {")[1].split("}")[0]
    assert "server 172.18.0.5:8000; server 172.18.0.6:8000;" in web
    api = site.split("upstream dragonfly_api {")[1].split("}")[0]
    assert "server 172.18.0.7:8000; server 172.18.0.8:8000;" in api
    assert "keepalive 128;" in api
    v1 = site.split("location /v1/ {")[1].split("}")[0]
    assert "proxy_pass http://dragonfly_api;" in v1
    assert site.count("proxy_pass http://dragonfly_api;") == 1
    assert site.count("proxy_pass http://dragonfly_web;") == 2
    assert 'proxy_set_header Connection "";' in site  # what keeps a kept connection open
    assert "return 301 https://dragonfly.example.com$request_uri;" in site
    assert "proxy_set_header X-Forwarded-Proto https;" in site
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ include /etc/nginx/mime.types; include {tmp_path}/dragonfly.conf; }}\n"
    )
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_rendering_refuses_an_unset_variable_and_writes_nothing(tmp_path):
    result = _render(tmp_path, DRAGONFLY_WEB_SERVERS="")
    assert result.returncode == 1
    assert "${DRAGONFLY_WEB_SERVERS}" in result.stderr
    assert not (tmp_path / "dragonfly.conf").exists()


def test_the_env_file_never_overrides_what_the_image_sets():
    """docker/.env (a copy of .env.example) is every app container's env_file, which wins over
    the image's ENV: a line there for DRAGONFLY_STATIC_MANIFEST would break every page's CSS.
    (A blank value counts as unset everywhere: settings, entrypoint.sh, container_health.)"""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    app_env = dockerfile.split(" AS app")[1].split("\nRUN ")[0]
    image = dict(re.findall(r"([A-Z_]+)=(\S+)", app_env))
    assert image["DRAGONFLY_STATIC_MANIFEST"] == "1"
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and not line.endswith("=")
    )
    assert {name: example[name] for name in image if name in example} == {
        name: image[name] for name in image if name in example
    }


def test_the_certificates_and_secrets_stay_out_of_the_images_and_the_repository():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "docker/tls" in ignored
    assert "docker/.env" in ignored
    assert "docker/tls/" in (ROOT / ".gitignore").read_text().splitlines()
