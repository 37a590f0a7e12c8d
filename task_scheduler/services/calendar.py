"""The calendar feed: rules and their stored exceptions as one iCalendar document.

A rule the RFC can say becomes RRULE series (domain.ical); its skipped, cancelled and
disabled occurrences become EXDATEs and its moved ones RECURRENCE-ID events. Everything
else in the window (occurrences of other schedules, extra dates, run-now and ad-hoc tasks,
history of paused rules) is a single event, so the feed lists what GET /tasks lists,
less what will not run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from task_scheduler.clock import Clock
from task_scheduler.domain import cpu
from task_scheduler.domain.ical import Series, Single, render, series_for, series_of
from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.schedule import schedule_adapter
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.services.off_loop import off_loop
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from task_scheduler.storage.store import Store

NOT_RUN = {TaskStatus.skipped.value, TaskStatus.cancelled.value}
RULES_PAGE = 1000
SMALLEST_STEP = timedelta(microseconds=1)  # turns an exclusive bound into an inclusive one


def _will_not_run(task: TaskRecord) -> bool:
    return task.status in NOT_RUN or (task.status == TaskStatus.scheduled.value and not task.enabled)


def _summary(rule: RuleRecord | None, task: TaskRecord | None = None) -> str:
    what = (rule.category or rule.task_kind) if rule else (task.category or task.kind if task else "")
    return f"{rule.name if rule else 'ad hoc task'} ({what})"


class CalendarFeed:
    def __init__(self, store: Store, clock: Clock, site_timezone: str) -> None:
        self._store = store
        self._clock = clock
        self._site_timezone = site_timezone

    async def render(
        self,
        *,
        start: datetime,
        end: datetime,
        rule_id: int | None,
        category: str | None,
        kind: str | None,
        target: str | None,
    ) -> bytes:
        rules = await self._rules(rule_id, category, kind, target)
        stored = await self._store.list_tasks(
            start, end, rule_id=rule_id, status=None, category=category, kind=kind
        )
        now = self._clock.now()
        ad_hoc = rule_id is None and target is None  # else other rules' tasks were filtered out
        return await off_loop(lambda: self._document(rules, stored, start, end, now, ad_hoc=ad_hoc))

    def _document(
        self,
        rules: list[RuleRecord],
        stored: list[TaskRecord],
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        ad_hoc: bool,
    ) -> bytes:
        by_rule: dict[int | None, list[TaskRecord]] = {}
        for task in stored:
            by_rule.setdefault(task.rule_id, []).append(task)
        series: list[Series] = []
        singles: list[Single] = []
        for rule in rules:
            cpu.check()
            found, alone = self._rule(rule, by_rule.pop(rule.id, []), start, end)
            series += found
            singles += alone
        if ad_hoc:
            for task in by_rule.get(None, []):
                if not _will_not_run(task):
                    singles.append(Single(f"task-{task.id}", task.scheduled_at, _summary(None, task)))
        return render("Task scheduler", self._site_timezone, series, singles, now)

    async def _rules(
        self, rule_id: int | None, category: str | None, kind: str | None, target: str | None
    ) -> list[RuleRecord]:
        if rule_id is not None:
            rule = await self._store.get_rule(rule_id)
            return [rule] if rule is not None else []
        rules: list[RuleRecord] = []
        while True:
            page, total = await self._store.list_rules(
                category=category, kind=kind, target=target, limit=RULES_PAGE, offset=len(rules)
            )
            rules += page
            if not page or len(rules) >= total:
                return rules

    def _rule(
        self, rule: RuleRecord, stored: list[TaskRecord], start: datetime, end: datetime
    ) -> tuple[list[Series], list[Single]]:
        """The rule's series and single events in the window, matching GET /tasks: stored
        tasks up to where the rule is stored, computed occurrences after it. The series start
        after the rule's last change (creation, edit, resume); what is older is history."""
        summary = _summary(rule)
        uid = f"rule-{rule.id}"
        by_original = {task.original_at: task for task in stored}
        series: list[Series] = []
        computed: list[datetime] = []
        in_series: set[datetime] = set()
        if rule.enabled:
            schedule = schedule_adapter.validate_python(rule.schedule)
            tz = ZoneInfo(rule.timezone)
            since = rule.updated_at
            stored_until = max(since, rule.expanded_until or since)
            last = end - SMALLEST_STEP
            recurrence = Recurrence(schedule, tz, rule.created_at)
            computed = list(recurrence.between(max(start - SMALLEST_STEP, stored_until), last))
            series = series_of(schedule, tz, rule.created_at, since, uid, summary) or []
            if series:
                own = Recurrence(schedule.model_copy(update={"extra_dates": []}), tz, rule.created_at)
                in_series = set(own.between(max(start - SMALLEST_STEP, since), last))
                for instant in in_series:
                    owner = series_for(series, instant)
                    if owner is not None and instant <= stored_until and instant not in by_original:
                        owner.exdates.append(owner.instance(instant))  # passed over: never stored
        singles = [
            Single(f"{uid}-{instant:%Y%m%dT%H%M%SZ}", instant, summary)
            for instant in computed
            if instant not in in_series and instant not in by_original
        ]
        for original, task in by_original.items():
            owner = series_for(series, original) if original in in_series else None
            if owner is None:
                if not _will_not_run(task):
                    singles.append(Single(f"task-{task.id}", task.scheduled_at, summary))
            elif _will_not_run(task):
                owner.exdates.append(owner.instance(original))
            elif task.scheduled_at != original:
                owner.moved.append((owner.instance(original), task.scheduled_at))
        return series, singles
