"""Calendar apps: the iCalendar feed (`GET /calendar.ics`), its token, and `.ics` import."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from task_scheduler.api.deps import KindQuery, RuleIdQuery, Services, UtcDatetime, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import Caller, allow, bearer_token
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Forbidden, Invalid
from task_scheduler.services.auth import FeedToken

router = APIRouter(tags=["calendar"])
Svc = Annotated[Services, Depends(services)]
FEED_PAST = timedelta(days=30)
FEED_AHEAD = timedelta(days=366)
MAX_FEED_WINDOW = timedelta(days=3 * 366)


@router.post(
    "/auth/feed-token",
    response_model=FeedToken,
    dependencies=[allow(Role.viewer)],
    responses={
        **Problem.AUTH,
        409: {"description": "Authentication is switched off: the feed needs no token"},
    },
)
async def feed_token(svc: Svc, caller: Caller) -> FeedToken:
    """A long-lived token (`auth_feed_token_ttl_s`) for `GET /calendar.ics?token=`: calendar
    apps cannot send headers. It opens the feed only; changing `auth_jwt_secret` revokes it."""
    return await svc.auth.feed_token(caller)


@router.get(
    "/calendar.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "An RFC 5545 calendar"},
        **Problem.AUTH,
    },
)
async def calendar_feed(
    request: Request,
    svc: Svc,
    token: Annotated[
        str | None, Query(description="A token from POST /auth/feed-token (or send a bearer token).")
    ] = None,
    start: Annotated[
        UtcDatetime | None, Query(description="Exceptions and single events from; default now - 30 days.")
    ] = None,
    end: Annotated[
        UtcDatetime | None, Query(description="... until (exclusive); default start + 396 days.")
    ] = None,
    rule_id: RuleIdQuery = None,
    category: Annotated[str | None, Query(description="RMF task category, e.g. clean.")] = None,
    kind: KindQuery = None,
    target: Annotated[
        str | None, Query(min_length=1, max_length=128, description="The rules' target.")
    ] = None,
) -> Response:
    """The occurrences as iCalendar: each rule a calendar app can repeat by itself as one VEVENT
    per time of day with RRULE (zone in TZID, with VTIMEZONE), skipped and disabled occurrences
    as EXDATE, moved ones as RECURRENCE-ID events; anything else in the window as single
    events. Filters as GET /tasks. With authentication on, the viewer role is needed: a feed
    token as `?token=`, or a bearer token."""
    if svc.auth.enabled:
        if token:
            caller = await svc.auth.authenticate_feed(token)
        else:
            caller = await svc.auth.authenticate(await bearer_token(request))
        if not caller.role.allows(Role.viewer):
            raise Forbidden(f"needs the viewer role; {caller.username!r} is a {caller.role.value}")
    start = start or svc.clock.now() - FEED_PAST
    end = end or start + FEED_PAST + FEED_AHEAD
    if end <= start:
        raise Invalid.at(("query", "end"), "end must be after start")
    if end - start > MAX_FEED_WINDOW:
        raise Invalid.at(("query", "end"), "the window may be at most three years long")
    body = await svc.calendar.render(
        start=start, end=end, rule_id=rule_id, category=category, kind=kind, target=target
    )
    return Response(content=body, media_type="text/calendar; charset=utf-8")
