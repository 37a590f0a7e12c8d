"""GET /tasks pages: every occurrence exactly once, in order, against a brute-force reference
that materialises the whole window (stored tasks plus every rule's occurrences past its
stored ones, less those stored as exceptions)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_scheduler.domain.tasks import task_id
from task_scheduler.services import listing
from task_scheduler.services.occurrences import SMALLEST_STEP, recurrence_of
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from tests.integration.conftest import T0
from tests.integration.test_api_contract import CLEAN, create, tasks
from tests.integration.test_queries_and_bulk import as_kind

START = "2026-01-05T00:00:00"
SCHEDULES: dict[str, dict[str, Any]] = {
    "once": {"kind": "once", "at": "2026-01-20T10:00:00"},
    "interval": {"kind": "interval", "unit": "hours", "every": 7, "start": START},
    "daily": {"kind": "daily", "times": ["07:00", "19:30"], "start": START},
    "weekly": {"kind": "weekly", "weekdays": ["mon", "thu"], "times": ["09:00"], "start": START},
    "monthly": {"kind": "monthly", "days": [1, 15, -1], "times": ["08:00"], "start": START},
    "monthly_weekday": {
        "kind": "monthly_weekday",
        "weekday": "tue",
        "nth": 2,
        "times": ["10:00"],
        "start": START,
    },
    "cron": {"kind": "cron", "expression": "0 */6 * * *", "start": START},
    "rrule": {"kind": "rrule", "rrule": "FREQ=DAILY;INTERVAL=3;BYHOUR=6,18;BYMINUTE=0", "start": START},
}
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]


async def reference(start: datetime, end: datetime, **filters: Any) -> list[str]:
    """The window's ids by (time, id), computed the slow way."""
    stored = TaskRecord.filter(scheduled_at__gte=start, scheduled_at__lt=end)
    rules = RuleRecord.filter(enabled=True, expanded_until__isnull=False)
    for name, value in filters.items():
        if value is not None:
            stored = stored.filter(**{name: value})
            if name != "status":
                rules = rules.filter(**{{"kind": "task_kind", "rule_id": "id"}.get(name, name): value})
    items = [(t.scheduled_at, t.id) for t in await stored]
    every_stored = set(await TaskRecord.all().values_list("id", flat=True))
    if filters.get("status") in (None, "scheduled"):
        for rule in await rules:
            for t in recurrence_of(rule).between(start - SMALLEST_STEP, end - SMALLEST_STEP):
                if t > rule.expanded_until and task_id(rule.id, t) not in every_stored:
                    items.append((t, task_id(rule.id, t)))
    return [i for _, i in sorted(items)]


async def paged(limit: int, service, **params: Any) -> list[dict[str, Any]]:
    """Every item, following the cursor; checks each page's size and its cursor."""
    page = await tasks(service, limit=limit, **params)
    items = list(page["items"])
    while page["next"] is not None:
        assert len(page["items"]) == limit
        page = await tasks(service, cursor=page["next"], limit=limit)
        items += page["items"]
    return items


def in_order(items: list[dict[str, Any]]) -> bool:
    keys = [(item["scheduled_at"], item["id"]) for item in items]
    return keys == sorted(keys) and len({item["id"] for item in items}) == len(items)


async def make_exceptions(service, ids: list[str]) -> dict[str, str]:
    """Skip, move (within the window and out of it), disable and re-word occurrences: every
    ``len(ids) // 6``-th one, stored or computed alike. Returns what was done to each."""
    done = {}
    step = max(1, len(ids) // 6)
    actions = ["skip", "move", "move out", "disable", "reword"]
    for action, tid in zip(actions, ids[step::step], strict=False):
        if action == "skip":
            response = await service.http.delete(f"/tasks/{tid}")
        elif action == "reword":
            body = {"request": {"category": "patrol", "description": {"places": ["a", "b"]}}}
            response = await service.http.patch(f"/tasks/{tid}", json=body)
        else:
            shift = {"move": timedelta(days=3), "move out": timedelta(days=400)}.get(action)
            task = (await service.http.get(f"/tasks/{tid}")).json()
            body = (
                {"enabled": False}
                if shift is None
                else {"scheduled_at": (datetime.fromisoformat(task["scheduled_at"]) + shift).isoformat()}
            )
            response = await service.http.patch(f"/tasks/{tid}", json=body)
        assert response.status_code in (200, 204), response.text
        done[tid] = action
    return done


def small_reads(monkeypatch) -> None:
    """Read stored tasks and rules a few at a time, so that pages cross their reads."""
    monkeypatch.setattr(listing, "STORED_CHUNK", 3)
    monkeypatch.setattr(listing, "RULE_CHUNK", 1)


async def test_cursor_pages_hold_every_occurrence_once_in_order_with_exceptions(service, monkeypatch):
    small_reads(monkeypatch)
    rule_ids = {}
    for n, (kind, schedule) in enumerate(SCHEDULES.items()):
        made = await create(service, name=kind, schedule=schedule, timezone=ZONES[n % len(ZONES)])
        rule_ids[kind] = made["id"]
    await as_kind(rule_ids["cron"], "http")
    await service.expand()
    window = {"start": T0, "end": T0 + timedelta(days=40)}
    before = await reference(**window)
    done = await make_exceptions(service, before)
    assert set(done.values()) == {"skip", "move", "move out", "disable", "reword"}
    expected = await reference(**window)
    assert expected != before

    for limit in (1, 7, 100):
        items = await paged(limit, service, **window)
        assert [item["id"] for item in items] == expected
        assert in_order(items)
    listed = {item["id"]: item for item in await paged(50, service, **window)}
    for tid, action in done.items():
        if action == "move out":
            assert tid not in listed
            continue
        item = listed[tid]
        assert item["materialized"] and item["edited"]
        assert (item["status"], item["enabled"]) == (
            ("skipped", False) if action == "skip" else ("scheduled", action != "disable")
        )
        assert (item["scheduled_at"] != item["original_at"]) == (action == "move")
    assert {item["kind"] for item in listed.values()} == {"rmf", "http"}

    filters = [
        {"rule_id": rule_ids["daily"]},
        {"kind": "http"},
        {"category": "clean"},
        {"status": "scheduled"},
        {"status": "skipped"},
    ]
    for extra in filters:
        items = await paged(9, service, **window, **extra)
        assert [item["id"] for item in items] == await reference(**window, **extra), extra


async def test_total_is_given_where_it_costs_nothing(service):
    made = await create(service, schedule=SCHEDULES["daily"])
    first_day = {"start": T0, "end": T0 + timedelta(hours=20)}  # all stored at creation
    page = await tasks(service, limit=1, **first_day)
    assert page["total"] == len(await reference(**first_day)) == 2 and page["next"] is not None
    month = {"start": T0, "end": T0 + timedelta(days=30)}
    assert (await tasks(service, limit=5, **month))["total"] is None
    whole = await tasks(service, limit=100, **month)
    assert whole["total"] == len(whole["items"]) == len(await reference(**month)) == 60
    assert whole["next"] is None
    assert (await tasks(service, limit=5, status="skipped", **month))["total"] == 0
    assert (await tasks(service, limit=5, rule_id=made["id"] + 1, **month))["total"] == 0


async def test_any_window_of_a_two_second_rule_answers_its_page(service):
    made = await create(
        service, schedule={"kind": "interval", "unit": "seconds", "every": 2, "start": "2026-01-05T12:00:00"}
    )
    await as_kind(made["id"], "http")
    year = {"start": T0 + timedelta(days=100), "end": T0 + timedelta(days=465)}
    for extra in ({}, {"kind": "http"}, {"rule_id": made["id"]}):
        page = await tasks(service, limit=100, **year, **extra)
        times = [datetime.fromisoformat(item["scheduled_at"]) for item in page["items"]]
        assert times == [year["start"] + timedelta(seconds=2 * k) for k in range(100)], extra
        following = await tasks(service, cursor=page["next"], limit=100)
        times = [datetime.fromisoformat(item["scheduled_at"]) for item in following["items"]]
        assert times == [year["start"] + timedelta(seconds=2 * k) for k in range(100, 200)]
        assert page["total"] is None
    deep = await tasks(service, limit=3, offset=1000, **year)
    assert [item["scheduled_at"] for item in deep["items"]] == [
        (year["start"] + timedelta(seconds=2 * k)).isoformat().replace("+00:00", "Z")
        for k in (1000, 1001, 1002)
    ]


async def test_a_cursor_keeps_its_window_and_filters(service):
    await create(service, schedule=SCHEDULES["daily"])
    page = await tasks(service, limit=2, start=T0, end=T0 + timedelta(days=5), kind="rmf")
    same = await tasks(service, cursor=page["next"], limit=2, kind="rmf", end=T0 + timedelta(days=5))
    assert same["start"] == page["start"] and same["end"] == page["end"]
    other = await service.http.get("/tasks", params={"cursor": page["next"], "kind": "http"})
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == ["query", "kind"]
    for bad in ("nonsense", page["next"][:-4], "W10"):
        response = await service.http.get("/tasks", params={"cursor": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "cursor"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=st.lists(
        st.tuples(st.sampled_from(sorted(SCHEDULES)), st.sampled_from(ZONES), st.integers(0, 20)),
        min_size=1,
        max_size=4,
    ),
    window=st.tuples(st.integers(-2 * 24, 20 * 24), st.integers(1, 20 * 24)),
    limit=st.integers(1, 12),
    exceptions=st.booleans(),
    expand_days=st.integers(0, 3),
)
async def test_the_merged_listing_is_the_materialised_one(
    service, monkeypatch, rules, window, limit, exceptions, expand_days
):
    small_reads(monkeypatch)
    await RuleRecord.all().delete()
    await TaskRecord.all().delete()
    service.clock.set(T0)
    for n, (kind, zone, shift_h) in enumerate(rules):
        schedule = dict(SCHEDULES[kind])
        if "start" in schedule:
            schedule["start"] = (datetime.fromisoformat(START) + timedelta(hours=shift_h)).isoformat()
        await create(service, name=f"{kind} {n}", schedule=schedule, timezone=zone)
    service.clock.set(T0 + timedelta(days=expand_days))
    await service.expand()
    start = T0 + timedelta(hours=window[0])
    span = {"start": start, "end": start + timedelta(hours=window[1])}
    if exceptions:
        await make_exceptions(service, await reference(**span))
    items = await paged(limit, service, **span)
    assert [item["id"] for item in items] == await reference(**span)


# Nuuk changes on 2026-03-28, Berlin on 03-29, Lord Howe (by half an hour) on 04-05.
DST_ZONES = ["UTC", "Europe/Berlin", "America/Nuuk", "Australia/Lord_Howe"]
NEAR_DST = datetime(2026, 3, 22, 12, tzinfo=timezone.utc)


@st.composite
def phased(draw) -> dict[str, Any]:
    """A daily or weekly schedule, with the bounds the phase index checks."""
    times = draw(
        st.lists(st.sampled_from(["00:30", "02:30", "03:00", "09:15:30", "23:45"]), min_size=1, max_size=2)
    )
    schedule: dict[str, Any] = {"kind": "daily", "times": times, "every": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        days = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
        schedule |= {"kind": "weekly", "weekdays": draw(st.lists(days, min_size=1, max_size=3))}
    start = NEAR_DST.replace(tzinfo=None) + timedelta(hours=draw(st.integers(-72, 96)))
    schedule["start"] = start.isoformat()
    if draw(st.booleans()):
        schedule["end"] = (start + timedelta(days=draw(st.integers(1, 20)))).isoformat()
    skipped = draw(st.lists(st.integers(0, 20), max_size=2))
    schedule["except_dates"] = [(start.date() + timedelta(days=n)).isoformat() for n in skipped]
    return schedule


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=st.lists(st.tuples(phased(), st.sampled_from(DST_ZONES), st.booleans()), min_size=1, max_size=5),
    window=st.tuples(st.sampled_from([60, 130, 200, 0, -24]), st.sampled_from([240, 480, 120, 48, 6])),
    limit=st.integers(1, 12),
    exceptions=st.booleans(),
    kind=st.sampled_from([None, None, "http"]),
)
async def test_daily_and_weekly_rules_list_as_materialised_across_dst(
    service, monkeypatch, rules, window, limit, exceptions, kind
):
    small_reads(monkeypatch)
    monkeypatch.setattr(listing, "CANDIDATES", 2)
    await RuleRecord.all().delete()
    await TaskRecord.all().delete()
    service.clock.set(NEAR_DST - timedelta(days=4))
    made = []
    for n, (schedule, zone, http) in enumerate(rules):
        body = {"name": f"rule {n}", "schedule": schedule, "timezone": zone, "task": CLEAN}
        response = await service.http.post("/rules", json=body)
        if response.status_code == 201:  # else it ends before it fires, which is refused
            made.append((response.json(), http))
    service.clock.set(NEAR_DST)
    await service.expand()
    start = NEAR_DST + timedelta(hours=window[0])
    span = {"start": start, "end": start + timedelta(hours=window[1])}
    if exceptions:
        await make_exceptions(service, await reference(**span))
    for rule, http in made:
        if http:
            await as_kind(rule["id"], "http")  # after the exceptions: only rmf tasks take a request
    items = await paged(limit, service, **span, **({"kind": kind} if kind else {}))
    assert [item["id"] for item in items] == await reference(**span, kind=kind)


async def test_a_deep_page_reads_no_daily_rule_and_sees_every_change(service, monkeypatch):
    for n in range(30):
        await create(
            service, name=f"rule {n}", schedule={"kind": "daily", "times": [f"{n % 24:02d}:{n:02d}"]}
        )
    monkeypatch.setattr(listing, "CANDIDATES", 4)
    month = {"start": T0, "end": T0 + timedelta(days=30)}
    read = []
    computing_rules = service.services.tasks._lister._store.computing_rules

    async def counted(*args, **kwargs):
        read.append(args)
        return await computing_rules(*args, **kwargs)

    monkeypatch.setattr(service.services.tasks._lister._store, "computing_rules", counted)
    deep = {**month, "offset": 300, "limit": 10}
    assert [item["id"] for item in (await tasks(service, **deep))["items"]] == (await reference(**month))[
        300:310
    ]
    assert read == []

    # Changed behind this replica's back: edited by a replica whose clock is behind (the
    # latest change stays the same), then deleted, created.
    first, second = await RuleRecord.all().order_by("id").limit(2)
    edit = {"schedule": {"kind": "daily", "times": ["12:34"]}, "updated_at": T0 - timedelta(seconds=1)}
    changes = [
        RuleRecord.filter(id=first.id).update(**edit),
        RuleRecord.filter(id=second.id).delete(),
        create(service, name="weekly", schedule={"kind": "weekly", "weekdays": ["fri"], "times": ["05:00"]}),
    ]
    for change in changes:
        await change
        for page in ({**month, "offset": 300, "limit": 10}, {**month, "offset": 0, "limit": 1000}):
            got = [item["id"] for item in (await tasks(service, **page))["items"]]
            assert got == (await reference(**month))[page["offset"] :][: page["limit"]]
    assert read == []
