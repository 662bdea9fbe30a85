"""The test suite's settings: the site's own, plus what every test process needs.

pytest loads this module (``pyproject.toml``), and the server and worker processes that the
integration and browser tests start inherit it through ``DJANGO_SETTINGS_MODULE``, so a password
hashed in a test checks in a server. Per-test overrides live in the root ``conftest.py``.
"""

from .settings import *  # noqa: F403

# PBKDF2 is slow on purpose (a million iterations per hash); the suite creates users in most
# tests and needs no protection against brute force.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests change tokens and policies with queryset updates and expect the next request to see the
# change; the tests of the caches themselves turn them on (agents/tests/test_ingest_caches.py).
API_CACHE_SECONDS = 0.0
