"""The deployment files (Dockerfile, compose.yaml, deploy/nginx.conf) match the code.

Structural checks run everywhere; building the image and validating the compose file with
Docker run where Docker (a daemon and the compose plugin) is available, and are skipped with
the reason elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _command(service: dict[str, Any]) -> list[str]:
    return list(service.get("command") or [])


def test_compose_runs_each_role_with_volumes_for_the_data(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "redis", "release", "web", "worker", "beat", "nginx"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert {"pgdata", "redisdata"} <= set(compose["volumes"])
    assert _command(services["web"]) == ["web"]
    assert _command(services["worker"]) == ["worker"]
    # Web processes scale; the site's processes wait for the migrations.
    assert "replicas" in services["web"]["deploy"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["release"] == {
            "condition": "service_completed_successfully"
        }


def test_compose_has_exactly_one_beat(compose: dict[str, Any]) -> None:
    services = compose["services"]
    beats = [name for name, s in services.items() if "beat" in _command(s)]
    assert beats == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    # No worker runs an embedded beat either.
    for name, service in services.items():
        assert "--beat" not in _command(service) and "-B" not in _command(service), name
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert entrypoint.count("celery -A acw_site beat") == 1
    assert "--beat" not in entrypoint


def test_compose_sets_the_production_settings_the_code_reads(compose: dict[str, Any]) -> None:
    env = compose["services"]["web"]["environment"]
    assert env["DEBUG"] == "0"
    for name in (
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
    ):
        assert env[name], name
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/metrics"
    healthcheck = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "/healthz" in healthcheck


def test_nginx_passes_the_websocket_upgrade_and_the_forwarded_headers() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    ws = re.search(r"location /ws/ \{(.*?)\}", conf, re.S)
    assert ws is not None
    assert "proxy_set_header Upgrade    $http_upgrade;" in ws.group(1)
    assert "proxy_set_header Connection $connection_upgrade;" in ws.group(1)
    assert "proxy_http_version 1.1;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    assert "proxy_set_header Host              $host;" in conf
    assert "proxy_set_header X-Request-ID      $request_id;" in conf
    # The event API's 1 MiB bodies get through.
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert (
        size is not None and int(size.group(1)) * 1024 * 1024 > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )


def test_the_dockerfile_runs_as_a_user_and_collects_static_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "collectstatic --noinput" in dockerfile
    # Runtime requirements only, checked against their hashes; no dev tools in the image.
    assert "pip install --require-hashes -r requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile


def test_the_entrypoint_starts_the_asgi_application_and_the_celery_app() -> None:
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert "uvicorn acw_site.asgi:application" in entrypoint
    assert "celery -A acw_site worker" in entrypoint
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "the Docker daemon is not reachable (docker info failed)"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
    if compose.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


@pytest.mark.docker
def test_the_compose_file_is_valid_and_the_image_builds(tmp_path: Path) -> None:
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "SECRET_KEY": "compose-config-check"}
    config = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert config.returncode == 0, config.stderr
    build = subprocess.run(
        ["docker", "build", "--tag", "acw-watch:test", "."], cwd=ROOT, capture_output=True,
        text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    user = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", "acw-watch:test", "-u"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert user.stdout.strip() not in ("", "0")


def test_the_grafana_dashboard_queries_only_metrics_the_site_exports() -> None:
    import json

    from prometheus_client import REGISTRY

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bacw_[a-z_]+", expr)}
    exported = {
        sample_name
        for family in REGISTRY.collect()
        for sample_name in (
            family.name,
            f"{family.name}_total",
            f"{family.name}_bucket",
            f"{family.name}_count",
            f"{family.name}_sum",
        )
    } | {"acw_alerts_open", "acw_rollup_lag_seconds"}  # read at scrape time (DatabaseCollector)
    assert used and used <= exported, used - exported
    assert "grafana-dashboard.json" in (ROOT / "docs" / "operations.md").read_text()
