"""Page routes of the agents app: the wall, its actions, and the agent's wrap-up page."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.wall, name="wall"),
    path("wall/summary", views.wall_summary, name="wall-summary"),
    path("wall/end-acw/<path:external_id>", views.end_acw, name="wall-end-acw"),
    path("wall/links/", views.wall_link_list, name="wall-links"),
    path("wall/links/<int:pk>/revoke", views.wall_link_revoke, name="wall-link-revoke"),
    # Kiosk walls: no login, the signed link is the credential (agents.wall_links).
    path("tv/<str:signed>/", views.wall_kiosk, name="wall-kiosk"),
    path("tv/<str:signed>/summary", views.wall_kiosk_summary, name="wall-kiosk-summary"),
    path("me/", views.my_acw, name="my-acw"),
    path("me/state", views.my_state, name="my-state"),
    path("me/wrap-up", views.my_wrap_up, name="my-wrap-up"),
    path("me/ready", views.my_ready, name="my-ready"),
    path("me/extend", views.my_extend, name="my-extend"),
]
