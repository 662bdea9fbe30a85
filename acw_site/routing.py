"""WebSocket routes."""

from django.urls import path

from agents.consumers import WallConsumer

websocket_urlpatterns = [
    path("ws/wall/", WallConsumer.as_asgi()),
    # A kiosk wall opened from a signed wall link (agents.wall_links): no login.
    path("ws/wall/link/<str:link>/", WallConsumer.as_asgi()),
]
