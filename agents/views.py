"""Pages of the agents app: the supervisor wall and the agent's wrap-up page.

Views parse, authorise, call one service or selector and render. Every state change made here
(a supervisor ending an ACW, an agent's Ready or Extend) is an event like a telephony one that goes
through ``services.ingest_event``, so the wall hears of it exactly as of a telephony event.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import access, jsonbody, selectors, services, states, wall_links
from .events import agent_payload
from .models import (
    AcwMode,
    Agent,
    AgentState,
    Channel,
    ChecklistItem,
    State,
    Team,
    WallLink,
    WrapUpCode,
)
from .policies import Policies
from .states import AgentProjection

# --- The wall -------------------------------------------------------------------------------


def _watcher(request: HttpRequest) -> set[int]:
    """The teams the user may watch; refuses users the wall is not for."""
    if not access.can_watch(request.user):
        raise PermissionDenied
    return access.visible_team_ids(request.user)


def _vocabulary() -> dict[str, list[dict[str, Any]]]:
    """The states and channels with their labels, from the model choices, for the pages' JS."""
    return {
        "states": [{"value": value, "label": label} for value, label in State.choices],
        "channels": [{"value": value, "label": label} for value, label in Channel.choices],
    }


def _wall_summary(team_ids: set[int]) -> dict[str, Any]:
    return {"kpis": selectors.wall_kpis(team_ids), "config": selectors.wall_config()}


@login_required
@require_GET
def wall(request: HttpRequest) -> HttpResponse:
    """The supervisor wall: live tiles per agent, fed by /ws/wall/."""
    if not access.can_watch(request.user) and _linked_agent(request) is not None:
        # Agents sign in through the same form; their page is the wrap-up page.
        return redirect("my-acw")
    _watcher(request)
    endpoints = {"socket": "/ws/wall/", "summary": reverse("wall-summary")}
    return _wall_page(request, access.visible_teams(request.user), endpoints)


def _wall_page(
    request: HttpRequest, teams: QuerySet[Team], endpoints: dict[str, Any], **extra: Any
) -> HttpResponse:
    """The wall page for these teams; ``endpoints`` tell its script where to read from."""
    team_ids = set(teams.values_list("pk", flat=True))
    # The counters read left to right as a shift does: offline last.
    states = sorted(State.choices, key=lambda choice: choice[0] == State.OFFLINE)
    return render(
        request,
        "agents/wall.html",
        {
            "teams": list(teams.order_by("name").values_list("name", flat=True)),
            "summary": _wall_summary(team_ids),
            "states": states,
            "vocabulary": _vocabulary(),
            "endpoints": endpoints,
            **extra,
        },
    )


# --- Kiosk walls: signed wall links for screens on the floor (agents.wall_links) -------------


@login_required
@require_http_methods(["GET", "POST"])
def wall_link_list(request: HttpRequest) -> HttpResponse:
    """The user's wall links: create one (POST ``name``), see and revoke them."""
    if not wall_links.can_manage(request.user):
        raise PermissionDenied
    error = ""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()
        max_length = WallLink._meta.get_field("name").max_length or 100
        if not name or len(name) > max_length:
            error = _("Give the screen a name of at most %(n)s characters.") % {"n": max_length}
        else:
            wall_links.create_wall_link(request.user, name)
            return redirect("wall-links")
    links = [
        {"link": link, "url": request.build_absolute_uri(_kiosk_path(link))}
        for link in wall_links.visible_links(request.user)
    ]
    return render(
        request,
        "agents/wall_links.html",
        {"links": links, "error": error},
        status=400 if error else 200,
    )


@login_required
@require_POST
def wall_link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's wall links (admins: anyone's); its screens close."""
    if not wall_links.can_manage(request.user):
        raise PermissionDenied
    link = wall_links.visible_links(request.user).filter(pk=pk).first()
    if link is None:
        raise Http404
    wall_links.revoke_wall_link(link, request.user)
    return redirect("wall-links")


def _kiosk_path(link: WallLink) -> str:
    return reverse("wall-kiosk", args=[wall_links.signed_key(link)])


@require_GET
def wall_kiosk(request: HttpRequest, signed: str) -> HttpResponse:
    """A read-only wall for a screen on the floor: no login, no actions, its link's teams."""
    link = wall_links.active_link(signed)
    if link is None:
        # Revoked, altered or unknown: the screen says so (it reloads onto this page when its
        # link is revoked).
        return render(request, "agents/kiosk_gone.html", status=404)
    endpoints = {
        "socket": f"/ws/wall/link/{signed}/",
        "summary": reverse("wall-kiosk-summary", args=[signed]),
        "kiosk": True,
    }
    return _wall_page(request, link.teams.all(), endpoints, kiosk={"link": link, "signed": signed})


@require_GET
def wall_kiosk_summary(request: HttpRequest, signed: str) -> JsonResponse:
    """The kiosk wall's ``/wall/summary``."""
    link = wall_links.active_link(signed)
    if link is None:
        raise Http404
    return JsonResponse(_wall_summary(set(link.teams.values_list("pk", flat=True))))


@login_required
@require_GET
def wall_summary(request: HttpRequest) -> JsonResponse:
    """Today's ACW average against target and the colour rules; the wall re-reads it every 30 s."""
    return JsonResponse(_wall_summary(_watcher(request)))


def _json_body(request: HttpRequest) -> dict[str, Any]:
    """The posted fields (JSON or a form); raises ``JsonBodyError`` for an unreadable body."""
    if request.content_type == "application/json":
        body = jsonbody.loads(request.body or b"{}")
        return body if isinstance(body, dict) else {}
    return {key: request.POST.get(key) for key in request.POST}


def _ingest(event: dict[str, Any], source: str, request: HttpRequest) -> JsonResponse:
    result = services.ingest_event(event, source=source, actor_id=request.user.pk)
    return _answer(result, event["agent"])


def _answer(result: services.IngestResult, external_id: str) -> JsonResponse:
    if result.status != "accepted":
        return JsonResponse({"error": result.error or result.status}, status=400)
    live = AgentState.objects.select_related("agent__team").get(agent__external_id=external_id)
    return JsonResponse({"status": "accepted", "agent": agent_payload(live)})


def _event(agent: Agent, event_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{event_type}-{uuid.uuid4()}",
        "type": event_type,
        "agent": agent.external_id,
        "occurred_at": timezone.now().isoformat(),
        **fields,
    }


@login_required
@require_POST
def end_acw(request: HttpRequest, external_id: str) -> JsonResponse:
    """A supervisor ends an agent's ACW: ``acw.ended`` with reason ``supervisor``, by them."""
    team_ids = _watcher(request)
    agent = Agent.objects.filter(external_id=external_id, team_id__in=team_ids).first()
    if agent is None:
        # Not "forbidden": an agent outside the user's teams does not exist for them.
        raise Http404("no such agent among your teams")
    if not AgentState.objects.filter(agent=agent, state="acw").exists():
        return JsonResponse({"error": _("agent: not in ACW")}, status=409)
    return _answer(services.end_acw(agent, request.user), agent.external_id)


# --- The agent's wrap-up page ---------------------------------------------------------------


def _linked_agent(request: HttpRequest) -> Agent | None:
    if request.user.pk is None:
        return None
    return Agent.objects.select_related("team").filter(user_id=request.user.pk).first()


def _open_acw(live: AgentState) -> states.OpenAcw | None:
    """The open ACW as the state machine holds it, with the policy it started under."""
    return AgentProjection.from_json(live.projection).acw if live.state == "acw" else None


def _ready_from(acw: states.OpenAcw | None) -> datetime | None:
    """When Ready becomes possible: a strict policy keeps the agent in ACW until its deadline."""
    if acw is None or acw.deadline is None or acw.policy.mode != AcwMode.TIMED_STRICT:
        return None
    return acw.deadline


def _my_state(agent: Agent) -> dict[str, Any]:
    """The agent's live state with the ACW policy that applies to it right now."""
    live = AgentState.objects.select_related("agent__team").get(agent=agent).as_of(timezone.now())
    policy = Policies.load([agent.team_id]).spec(agent.team_id, live.channel or "")
    acw = _open_acw(live)
    ready_from = _ready_from(acw)
    return {
        "agent": agent_payload(live),
        # Set while a strict ACW runs: the page keeps Ready disabled until then.
        "ready_from": ready_from.isoformat() if ready_from else None,
        # What the agent saved so far (acw.updated), so a reloaded page shows it again.
        "wrap_up": (
            {"checklist": acw.checklist, "wrap_up_code": acw.wrap_up_code, "note": acw.note}
            if acw
            else None
        ),
        "policy": {
            "mode": policy.mode,
            "seconds": policy.seconds,
            "allow_extension": policy.allow_extension and policy.is_timed,
            "extension_step_seconds": policy.extension_step_seconds,
            "max_seconds": policy.max_seconds,
            "wrap_up_required": policy.wrap_up_required,
        },
    }


def _checklist(agent: Agent) -> list[ChecklistItem]:
    return list(
        ChecklistItem.objects.filter(Q(team=agent.team) | Q(team__isnull=True), active=True)
    )


@login_required
@require_GET
def my_acw(request: HttpRequest) -> HttpResponse:
    """The agent's wrap-up page: state, ACW countdown, checklist, wrap-up code, Ready/Extend."""
    agent = _linked_agent(request)
    if agent is None:
        return render(
            request, "agents/me_no_agent.html", {"can_watch": access.can_watch(request.user)}
        )
    return render(
        request,
        "agents/me.html",
        {
            "agent": agent,
            "state": _my_state(agent),
            "checklist": _checklist(agent),
            "wrap_up_codes": WrapUpCode.objects.filter(active=True),
            "vocabulary": _vocabulary(),
        },
    )


def _agent_or_403(request: HttpRequest) -> Agent:
    agent = _linked_agent(request)
    if agent is None:
        raise PermissionDenied("no agent is linked to this login")
    return agent


@login_required
@require_GET
def my_state(request: HttpRequest) -> JsonResponse:
    """The agent's live state, polled by the wrap-up page."""
    return JsonResponse(_my_state(_agent_or_403(request)))


class WrapUpError(ValueError):
    """A wrap-up field the page cannot accept; the message names it."""


def _wrap_up_fields(agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
    """The checklist, code and note of a posted wrap-up, checked; only the fields posted."""
    fields: dict[str, Any] = {}
    if "checklist" in body:
        allowed = {item.pk for item in _checklist(agent)}
        raw_ids = body.get("checklist") or []
        if not isinstance(raw_ids, list):
            raw_ids = [raw_ids]
        try:
            ticked = sorted({int(value) for value in raw_ids})
        except (TypeError, ValueError):
            raise WrapUpError(_("checklist: expected item ids")) from None
        if not set(ticked) <= allowed:
            raise WrapUpError(_("checklist: unknown item"))
        fields["checklist"] = ticked
    if "wrap_up_code" in body:
        code = str(body.get("wrap_up_code") or "").strip()
        if code and not WrapUpCode.objects.filter(code=code, active=True).exists():
            raise WrapUpError(_("wrap_up_code: unknown code"))
        fields["wrap_up_code"] = code
    if "note" in body:
        fields["note"] = str(body.get("note") or "").strip()[:4000]
    return fields


@login_required
@require_POST
def my_wrap_up(request: HttpRequest) -> JsonResponse:
    """The wrap-up as the agent fills it in (each checklist tick, the code chosen): saved with
    the open ACW at once (``acw.updated``), so a timeout records what was done."""
    agent = _agent_or_403(request)
    try:
        body = _json_body(request)
        fields = _wrap_up_fields(agent, body)
    except jsonbody.JsonBodyError as exc:
        return JsonResponse({"error": _("body: %s") % exc}, status=400)
    except WrapUpError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if not fields:
        return JsonResponse(
            {"error": _("body: expected checklist, wrap_up_code or note")}, status=400
        )
    live = AgentState.objects.get(agent=agent).as_of(timezone.now())
    if live.state != "acw":
        return JsonResponse({"error": _("state: you are not in after-call work")}, status=409)
    return _ingest(_event(agent, "acw.updated", **fields), "agent_page", request)


@login_required
@require_POST
def my_ready(request: HttpRequest) -> JsonResponse:
    """ "Ready": ends the agent's ACW with the wrap-up code, note and ticked checklist items.

    Under a strict policy (``timed_strict``) the page refuses Ready before the deadline: the
    agent stays in ACW until then. (An integration's ``acw.ended`` is still applied and flagged
    ``early_exit``: the telephony, not this page, decided it.)
    """
    agent = _agent_or_403(request)
    try:
        body = _json_body(request)
        fields = _wrap_up_fields(agent, {"checklist": [], **body})
    except jsonbody.JsonBodyError as exc:
        return JsonResponse({"error": _("body: %s") % exc}, status=400)
    except WrapUpError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    state = _my_state(agent)
    if state["agent"]["state"] != "acw":
        return JsonResponse({"error": _("state: you are not in after-call work")}, status=409)
    if state["ready_from"] is not None:
        ready_from = datetime.fromisoformat(state["ready_from"])
        left = math.ceil((ready_from - timezone.now()).total_seconds())
        message = _(
            "state: your ACW policy is strict: Ready is possible at the deadline, in %(n)d s"
        ) % {"n": left}
        return JsonResponse({"error": message, "ready_from": state["ready_from"]}, status=409)
    saved_code = (state["wrap_up"] or {}).get("wrap_up_code")
    if state["policy"]["wrap_up_required"] and not (fields.get("wrap_up_code") or saved_code):
        return JsonResponse(
            {"error": _("wrap_up_code: is required by your ACW policy")}, status=400
        )
    # A code or note left empty keeps what the page saved for this ACW (acw.updated).
    fields = {key: value for key, value in fields.items() if value or key == "checklist"}
    return _ingest(
        _event(agent, "acw.ended", reason="agent_ready", **fields), "agent_page", request
    )


@login_required
@require_POST
def my_extend(request: HttpRequest) -> JsonResponse:
    """ "Extend +N s": adds the policy's extension step to the open ACW, when allowed."""
    agent = _agent_or_403(request)
    live = AgentState.objects.only("state", "projection").get(agent=agent)
    # The machine decides whether an extension would count, so the page asks it the same question.
    acw = _open_acw(live)
    if acw is None:
        return JsonResponse({"error": _("state: you are not in after-call work")}, status=409)
    if not states.extension_allowed(acw):
        return JsonResponse(
            {"error": _("seconds: your ACW policy does not allow extension")}, status=400
        )
    if not states.can_extend(acw):
        longest = states.longest_acw_seconds(acw.policy)
        return JsonResponse(
            {"error": _("seconds: ACW already at its maximum of %s s") % longest}, status=409
        )
    event = _event(agent, "acw.extended", seconds=acw.policy.extension_step_seconds)
    return _ingest(event, "agent_page", request)
