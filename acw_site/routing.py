"""WebSocket routes."""

from django.urls import path

from agents.consumers import WallConsumer

websocket_urlpatterns = [
    path("ws/wall/", WallConsumer.as_asgi()),
]
