"""Calendar apps: the iCalendar feed (`GET /calendar.ics`), its token, and `.ics` import."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from task_scheduler.api.deps import KindQuery, RuleIdQuery, Services, UtcDatetime, services
from task_scheduler.api.errors import Problem
from task_scheduler.api.security import Caller, allow, bearer_token
from task_scheduler.domain.auth import Role
from task_scheduler.domain.errors import Forbidden, Invalid
from task_scheduler.domain.ical import rules_from_ics
from task_scheduler.domain.rules import NewRule, Rule
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


class CalendarImport(BaseModel):
    """An .ics file to turn into rules, and what those rules do."""

    model_config = ConfigDict(extra="forbid")

    calendar: str = Field(description="The .ics file's text (RFC 5545).", examples=["BEGIN:VCALENDAR..."])
    task: dict[str, Any] = Field(
        description="What every imported rule does: a task as in POST /rules.",
        examples=[{"kind": "rmf", "request": {"category": "clean", "description": {"zone": "lobby"}}}],
    )
    timezone: str | None = Field(
        None, description="Zone of floating times (a DTSTART without TZID); default the service's."
    )
    enabled: bool = True


EVENTS = ("calendar", "events")  # the error handler puts "body" first


@router.post(
    "/rules/import",
    status_code=201,
    response_model=list[Rule],
    dependencies=[allow(Role.operator)],
    responses={**Problem.AUTH, **Problem.BODY, **Problem.CONFLICT},
)
async def import_calendar(body: CalendarImport, svc: Svc, caller: Caller) -> list[Rule]:
    """Create a rule from each VEVENT (at most 100), all or none: SUMMARY names it,
    DTSTART (with its TZID) starts it, RRULE repeats it (UNTIL and COUNT become `end` and
    `count`), RDATE adds dates, EXDATE skips days; an event without RRULE or RDATE runs once.
    A 422 names the event (`events`, index) and what cannot be said as a rule: RECURRENCE-ID
    or EXRULE, an all-day or unnamed event, a zone that is not IANA, an EXDATE in a series
    that runs several times a day."""
    specs = []
    for index, document in enumerate(rules_from_ics(body.calendar)):
        document.setdefault("timezone", body.timezone)
        try:
            specs.append(NewRule.model_validate({**document, "task": body.task, "enabled": body.enabled}))
        except ValidationError as exc:
            raise Invalid([(_where(index, error["loc"]), error["msg"]) for error in exc.errors()]) from None
    try:
        return await svc.rules.create_many(specs, by=caller.username)
    except Invalid as exc:
        raise Invalid([(_where(loc[0], loc[1:]), message) for loc, message in exc.problems]) from None


def _where(index: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """An imported rule's problem at the request's field: the shared task, or the event."""
    if loc and loc[0] == "task":
        return loc
    return (*EVENTS, index, *loc)
