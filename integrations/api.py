"""The integration endpoints: each authenticates the platform its own way, parses, calls one
service and answers in the shape the platform expects (docs/integrations.md)."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from agents.models import ApiToken

from . import services

# Firehose buffers at most 64 MiB per request before base64 and JSON; refuse beyond that
# rather than read an unbounded body into memory.
MAX_FIREHOSE_BYTES = 96 * 1024 * 1024
RETRY_AFTER_SECONDS = 5


def _firehose_answer(request_id: str, status: int = 200, error: str | None = None) -> JsonResponse:
    """Firehose's response shape: the same ``requestId`` and a timestamp in milliseconds."""
    body: dict[str, Any] = {"requestId": request_id, "timestamp": int(time.time() * 1000)}
    if error is not None:
        body["errorMessage"] = error
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@csrf_exempt
@require_POST
def amazon_connect(request: HttpRequest) -> JsonResponse:
    """``POST /api/v1/integrations/amazon-connect``: a Firehose delivery of agent events.

    Answers 200 once every record was taken or refused on its own (a refused record is kept
    in the integration's status, never retried by Firehose); 401 for a bad access key, 400 for
    a body that is not Firehose's JSON, 503 while the database is down (Firehose retries).
    """
    request_id = request.headers.get("X-Amz-Firehose-Request-Id", "")
    body: Any = None
    problem = None
    try:
        body = json.loads(_read_body(request))
    except _TooLarge:
        problem = (413, f"body: larger than {MAX_FIREHOSE_BYTES} bytes")
    except (ValueError, UnicodeDecodeError, zlib.error, RecursionError):
        # RecursionError: JSON nested deeper than the parser goes is not JSON we can use.
        problem = (400, "body: not valid JSON")
    # Firehose sends the id in the header and the body; errors echo it too.
    if isinstance(body, dict) and isinstance(body.get("requestId"), str):
        request_id = body["requestId"]
    key = request.headers.get("X-Amz-Firehose-Access-Key", "")
    if not key or not _token_ok(key):
        return _firehose_answer(request_id, 401, "X-Amz-Firehose-Access-Key: invalid or missing")
    if problem is not None:
        return _firehose_answer(request_id, *problem)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        return _firehose_answer(request_id, 400, 'body: expected {"requestId", "records": [...]}')
    try:
        services.ingest_firehose(body, request_id)
    except (OperationalError, InterfaceError):
        return _firehose_answer(request_id, 503, "database unavailable, retry later")
    return _firehose_answer(request_id)


class _TooLarge(Exception):
    pass


def _read_body(request: HttpRequest) -> bytes:
    # request.read(), not request.body: Firehose batches exceed Django's in-memory upload
    # limit for ordinary requests, and have their own limit here.
    raw = request.read(MAX_FIREHOSE_BYTES + 1)
    if len(raw) > MAX_FIREHOSE_BYTES:
        raise _TooLarge
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(raw, MAX_FIREHOSE_BYTES + 1)
        if len(raw) > MAX_FIREHOSE_BYTES:
            raise _TooLarge
    return raw


def _token_ok(key: str) -> bool:
    return ApiToken.objects.filter(token_hash=ApiToken.hash(key), active=True).exists()


@csrf_exempt
@require_POST
def twilio_taskrouter(request: HttpRequest) -> JsonResponse:
    """``POST /api/v1/integrations/twilio/taskrouter``: one TaskRouter event callback.

    The ``X-Twilio-Signature`` is checked with Twilio's own validator against the URL Twilio
    called: behind a TLS-terminating proxy that is rebuilt from ``X-Forwarded-Proto`` and the
    forwarded host. A missing or wrong signature is 403 and no event is stored.
    """
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        services.twilio_refused("TWILIO_AUTH_TOKEN is not set: callbacks cannot be verified")
        return JsonResponse(
            {"error": "X-Twilio-Signature: cannot be checked, TWILIO_AUTH_TOKEN is not set"},
            status=403,
        )
    signature = request.headers.get("X-Twilio-Signature", "")
    url = public_url(request)
    if not signature or not RequestValidator(token).validate(url, request.POST, signature):
        services.twilio_refused(f"X-Twilio-Signature: missing or wrong for {url[:200]}")
        return JsonResponse({"error": "X-Twilio-Signature: missing or wrong"}, status=403)
    try:
        report = services.ingest_taskrouter(request.POST.dict())
    except (OperationalError, InterfaceError):
        response = JsonResponse({"error": "database unavailable, retry later"}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if report.refusals:
        _, reason, _ = report.refusals[0]
        return JsonResponse({"error": reason}, status=400)
    return JsonResponse({"accepted": report.accepted, "duplicates": report.duplicates})


def public_url(request: HttpRequest) -> str:
    """The URL the caller used, as seen in front of a reverse proxy."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    scheme = proto if proto in ("http", "https") else request.scheme
    return f"{scheme}://{host or request.get_host()}{request.get_full_path()}"
