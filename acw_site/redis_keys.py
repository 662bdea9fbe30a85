"""Names of this deployment's own Redis keys: always under ``settings.REDIS_PREFIX``."""

from django.conf import settings


def redis_key(*parts: object) -> str:
    """``<REDIS_PREFIX>:part:part...``, e.g. ``redis_key("lock", "rollups")``."""
    return ":".join([settings.REDIS_PREFIX, *(str(part) for part in parts)])
