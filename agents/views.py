"""Pages of the agents app."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import access


@login_required
def wall(request: HttpRequest) -> HttpResponse:
    """The supervisor wall: live tiles per agent, fed by /ws/wall/."""
    if not access.can_watch(request.user):
        raise PermissionDenied
    return render(request, "agents/wall.html", {})


@login_required
def my_acw(request: HttpRequest) -> HttpResponse:
    """The agent's wrap-up page."""
    return render(request, "agents/me.html", {})
