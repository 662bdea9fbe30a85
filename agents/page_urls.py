"""Page routes of the agents app: the wall and the agent's wrap-up page."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.wall, name="wall"),
    path("me/", views.my_acw, name="my-acw"),
]
