"""ASGI entry point: HTTP through Django, WebSocket through Channels (``/ws/wall/``)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acw_site.settings")
# Django must be set up before the handler loads the middleware and the routing imports models.
django.setup(set_prefix=False)

from .asgi_handler import SyncChainASGIHandler  # noqa: E402

# The middleware chain and the view in one thread hop (asgi_handler.py).
django_asgi_app = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .overload import OverloadLimiter  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402
from .security import SameOriginValidator  # noqa: E402
from .startup import freeze_loaded_objects  # noqa: E402
from .ws_auth import WebSocketAuthStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        # At most API_CONCURRENCY API requests at once, a short queue, then 503 (overload.py).
        "http": OverloadLimiter(django_asgi_app),
        # Same-origin only: the Origin's scheme, host and port must be the page's own. The
        # session and user are read at the handshake; frames go out unwrapped (ws_auth.py).
        "websocket": SameOriginValidator(WebSocketAuthStack(URLRouter(websocket_urlpatterns))),
    }
)
# Last: what is loaded now lives as long as the process (startup.py).
freeze_loaded_objects()
