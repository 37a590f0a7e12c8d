"""Every query the service makes, in one place; callers get and give plain records.

Callers own transactions (``Store.transaction()``); every method here runs inside the
caller's transaction when there is one. Writes and the claim are ``retrying``: run on
their own, they run again after a deadlock; inside a transaction, the method that owns
it is ``retrying`` and runs the whole transaction again.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count, Max
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from task_scheduler.domain import cpu
from task_scheduler.domain.errors import Conflict
from task_scheduler.domain.listing import Position, TaskQuery
from task_scheduler.domain.storable import storable, storable_json
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.storage import claim_sql
from task_scheduler.storage.claimed import RULE_COLUMNS, TASK_COLUMNS, ClaimedTask, DispatchRule, instant
from task_scheduler.storage.orm import RuleRecord, RunRecord, TargetRecord, TaskRecord, UserRecord
from task_scheduler.storage.retry import retrying

MAX_ID = 2**31 - 1  # ids are 32-bit columns
IDS_PER_STATEMENT = 1000
"""Ids asked for in one ``IN`` list: a statement takes some 32,000 parameters at most."""
FINISHED = tuple(
    s.value
    for s in (
        TaskStatus.dispatched,
        TaskStatus.failed,
        TaskStatus.missed,
        TaskStatus.skipped,
        TaskStatus.cancelled,
    )
)
"""Statuses after which nothing more happens to a task."""


@dataclass(frozen=True)
class TaskMatch:
    """Which stored tasks a bulk change applies to: every given filter at once."""

    kind: str | None = None
    rule_id: int | None = None
    ids: tuple[str, ...] = ()
    start: datetime | None = None
    """scheduled_at at or after this"""
    end: datetime | None = None
    """scheduled_at before this"""
    status: str | None = None


@dataclass(frozen=True)
class TaskDeletion:
    """What a bulk delete did to the tasks it matched (see ``Store.delete_tasks``)."""

    deleted: int = 0
    skipped: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class Settlement:
    """What became of one claimed task, to be recorded (see ``Store.settle``)."""

    task_id: str
    rule_id: int | None
    status: str
    reason: str | None
    at: datetime
    due_at: datetime | None = None
    """When it is due again (a retry, a task held back); None keeps the stored time."""
    fleet_task_id: str | None = None
    unsent: bool = False
    """Nothing was sent: the attempt the claim counted is taken back."""
    run: dict[str, Any] | None = None
    """The attempt's run row, by column."""
    rule_failed: bool | None = None
    """True counts one more failed occurrence for the rule, False resets the count."""
    pause_after: int = 0


RUN_COLUMNS = (
    "task_id",
    "rule_id",
    "attempt",
    "started_at",
    "finished_at",
    "duration_ms",
    "outcome",
    "fleet_task_id",
    "response",
    "error",
    "replica",
)
RUN_TYPES = tuple(
    re.sub(r"\(\d+\)$", "", RunRecord._meta.fields_map[column].get_for_dialect("postgres", "SQL_TYPE"))
    for column in RUN_COLUMNS
)
"""PostgreSQL's types of ``RUN_COLUMNS``, without lengths: an explicit cast to ``VARCHAR(n)``
would cut a longer value short, where inserting it fails."""


@dataclass(frozen=True)
class Settled:
    """A settled claim; ``paused_reason`` is set when this outcome paused the rule."""

    paused_reason: str | None = None


class Store:
    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[BaseDBAsyncClient]:
        """One transaction; once it commits, the request's CPU budget stops checking, so that
        a request that wrote is answered for what it wrote (see ``domain.cpu``)."""
        async with in_transaction() as connection:
            yield connection
        cpu.release()

    # -- rules ---------------------------------------------------------------------------

    @retrying
    async def insert_rule(self, **values: Any) -> RuleRecord:
        try:
            return await RuleRecord.create(**values)
        except IntegrityError:
            raise Conflict(f"a rule named {values['name']!r} already exists") from None

    async def get_rule(self, rule_id: int, *, for_update: bool = False) -> RuleRecord | None:
        if not 1 <= rule_id <= MAX_ID:
            return None  # cannot exist; PostgreSQL would refuse the comparison
        query = RuleRecord.filter(id=rule_id)
        if for_update:
            query = query.select_for_update()
        return await query.first()

    async def rules_by_ids(
        self, rule_ids: Iterable[int], *, for_update: bool = False, only: Sequence[str] = ()
    ) -> dict[int, RuleRecord]:
        """``only``: the fields to read (and the only ones to use), when not all are needed."""
        ids = list(set(rule_ids))
        if not ids:
            return {}
        query = RuleRecord.filter(id__in=ids)
        if only:
            query = query.only("id", *only)
        if for_update:
            query = query.select_for_update()
        return {record.id: record for record in await query}

    async def dispatch_rules(self, rule_ids: Iterable[int]) -> dict[int, DispatchRule]:
        """Claimed tasks' rules, as the dispatcher reads them: one query of plain rows."""
        ids = sorted(set(rule_ids))
        if not ids:
            return {}
        db = RuleRecord._meta.db
        sql, values = claim_sql.rows_by_id(db.capabilities.dialect, "rules", RULE_COLUMNS, ids)
        _, rows = await db.execute_query(sql, values)
        return {rule.id: rule for rule in map(DispatchRule.from_row, rows)}

    async def list_rules(
        self,
        *,
        enabled: bool | None = None,
        category: str | None = None,
        name_contains: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[RuleRecord], int]:
        query = RuleRecord.all()
        if enabled is not None:
            query = query.filter(enabled=enabled)
        if category is not None:
            query = query.filter(category=category)
        if kind is not None:
            query = query.filter(task_kind=kind)
        if target is not None:
            query = query.filter(target=target)
        if name_contains:
            query = query.filter(name__icontains=name_contains)
        total = await query.count()
        records = await query.order_by("id").offset(offset).limit(limit)
        return records, total

    async def rules_of_kind(self, kind: str) -> list[RuleRecord]:
        """Every rule whose task is of ``kind``, in id order."""
        return await RuleRecord.filter(task_kind=kind).order_by("id")

    @retrying
    async def save_rule(self, record: RuleRecord, **values: Any) -> RuleRecord:
        record.update_from_dict(values)
        try:
            await record.save()
        except IntegrityError:
            raise Conflict(f"a rule named {record.name!r} already exists") from None
        return record

    async def lock_all_rules(self) -> list[int]:
        """Every rule's id, each rule locked until the caller's transaction ends."""
        return list(await RuleRecord.all().order_by("id").select_for_update().values_list("id", flat=True))

    @retrying
    async def delete_rules(self, rule_ids: Sequence[int], after: datetime) -> int:
        """Remove these rules and their occurrences not run yet after ``after`` (see
        ``delete_future_tasks``); return how many such occurrences went with them."""
        removed = 0
        for chunk in _chunks(rule_ids, 1000):  # bounded statements, whatever the number of rules
            removed += await self._not_run_after(after).filter(rule_id__in=chunk).delete()
            await RuleRecord.filter(id__in=chunk).delete()
        return removed

    async def rules_to_expand(self, below: datetime, after_id: int, limit: int) -> list[RuleRecord]:
        """Enabled rules whose stored occurrences end before ``below``, in id order from ``after_id``."""
        return (
            await RuleRecord.filter(enabled=True, expanded_until__lt=below, id__gt=after_id)
            .order_by("id")
            .limit(limit)
        )

    @retrying
    async def set_expanded_until(self, rule_id: int, until: datetime | None) -> None:
        await RuleRecord.filter(id=rule_id).update(expanded_until=until)

    async def rules_unexpanded_before(
        self,
        until: datetime,
        *,
        rule_id: int | None = None,
        category: str | None = None,
        kind: str | None = None,
        for_update: bool = False,
    ) -> list[RuleRecord]:
        """Enabled rules with occurrences not yet stored before ``until`` (computed on the fly).

        ``for_update`` locks them: neither the expander nor a series edit stores their
        occurrences until the caller's transaction ends."""
        query = RuleRecord.filter(enabled=True, expanded_until__lt=until)
        if rule_id is not None:
            query = query.filter(id=rule_id)
        if category is not None:
            query = query.filter(category=category)
        if kind is not None:
            query = query.filter(task_kind=kind)
        if for_update:
            query = query.select_for_update()
        return await query.order_by("id")

    # -- tasks ---------------------------------------------------------------------------

    @retrying
    async def insert_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Store occurrences; ones already stored (same rule and original time) are kept as they are."""
        if records:
            await TaskRecord.bulk_create(records, batch_size=500, ignore_conflicts=True)

    async def get_task(self, task_id: str, *, for_update: bool = False) -> TaskRecord | None:
        if not _fits(TaskRecord, "id", task_id):
            return None
        query = TaskRecord.filter(id=task_id)
        if for_update:
            query = query.select_for_update()
        return await query.first()

    @retrying
    async def insert_task(self, record: TaskRecord) -> TaskRecord:
        try:
            await record.save(force_create=True)
        except IntegrityError:
            raise Conflict(f"task {record.id!r} was stored concurrently; retry") from None
        return record

    @retrying
    async def save_task(self, record: TaskRecord, **values: Any) -> TaskRecord:
        record.update_from_dict(values)
        await record.save()
        return record

    def _task_query(
        self,
        start: datetime,
        end: datetime,
        *,
        rule_id: int | None,
        status: str | None,
        category: str | None,
        kind: str | None,
    ):
        query = TaskRecord.filter(scheduled_at__gte=start, scheduled_at__lt=end)
        if rule_id is not None:
            query = query.filter(rule_id=rule_id)
        if status is not None:
            query = query.filter(status=status)
        if category is not None:
            query = query.filter(category=category)
        if kind is not None:
            query = query.filter(kind=kind)
        return query

    async def count_tasks(self, start: datetime, end: datetime, **filters: Any) -> int:
        return await self._task_query(start, end, **filters).count()

    async def list_tasks(self, start: datetime, end: datetime, **filters: Any) -> list[TaskRecord]:
        """Every stored task in the window matching the filters, by time then id (the calendar
        feed's read: it keeps each series as one event, so it reads a window whole)."""
        return await self._task_query(start, end, **filters).order_by("scheduled_at", "id")

    async def tasks_after(
        self, query: TaskQuery, after: Position | None, limit: int, only: Sequence[str] = ()
    ) -> list[TaskRecord]:
        """The first ``limit`` stored tasks of a listing strictly after ``after``, by (time, id):
        one keyset page, so its cost does not grow with how deep the listing is.  ``only``:
        the fields to read (and the only ones to use), when not all are needed."""
        rows = self._task_query(
            query.start if after is None else max(query.start, after.at),  # the index's lower bound
            query.end,
            rule_id=query.rule_id,
            status=query.status,
            category=query.category,
            kind=query.kind,
        )
        if after is not None:
            rows = rows.filter(Q(scheduled_at__gt=after.at) | Q(scheduled_at=after.at, id__gt=after.id))
        if only:
            rows = rows.only("id", "scheduled_at", *only)
        return await rows.order_by("scheduled_at", "id").limit(limit)

    def _computing(self, query: TaskQuery) -> QuerySet[RuleRecord]:
        rules = RuleRecord.filter(enabled=True, expanded_until__lt=query.end)
        if query.rule_id is not None:
            rules = rules.filter(id=query.rule_id)
        if query.category is not None:
            rules = rules.filter(category=query.category)
        if query.kind is not None:
            rules = rules.filter(task_kind=query.kind)
        return rules

    async def computing_rules(
        self,
        query: TaskQuery,
        after: tuple[datetime, int] | None,
        limit: int,
        among: Sequence[int] | None = None,
    ) -> list[tuple[int, datetime, tuple[Any, ...]]]:
        """(id, expanded_until, version) of enabled rules matching the listing's rule filters
        whose stored occurrences end before the listing's end, by (expanded_until, id)
        strictly after ``after``: rules whose occurrences a listing computes; only those
        ``among`` these ids if given.

        The version (created_at and updated_at as the driver returns them) changes whenever
        the rule's occurrences may.  Rows are read without the ORM's per-value conversion:
        a listing past the stored horizon reads every rule's row, and that conversion was
        most of its cost."""
        rules = self._computing(query)
        if among is not None:
            rules = rules.filter(id__in=list(among))
        if after is not None:
            until, rule_id = after
            rules = rules.filter(Q(expanded_until__gt=until) | Q(expanded_until=until, id__gt=rule_id))
        rows = await _raw(
            rules.order_by("expanded_until", "id")
            .limit(limit)
            .values_list("id", "expanded_until", "created_at", "updated_at")
        )
        return [(row[0], instant(row[1]), (row[2], row[3])) for row in rows]

    async def rules_version(self) -> tuple[Any, Any]:
        """The highest rule id and the latest change to a rule (as the driver returns it): one
        or the other moves whenever a rule is created or edited.  Two steps down two indexes."""
        latest_id = await RuleRecord.all().order_by("-id").first().values_list("id", flat=True)
        latest = await _raw(RuleRecord.all().order_by("-updated_at").limit(1).values_list("updated_at"))
        return latest_id, latest[0][0] if latest else None

    async def enabled_rules(
        self, after_id: int, limit: int
    ) -> list[tuple[int, str, str, str | None, str, datetime, tuple[Any, ...]]]:
        """(id, timezone, schedule as JSON, category, task kind, created_at, version) of enabled
        rules by id after ``after_id``, read without the ORM's records (see computing_rules)."""
        rows = await _raw(
            RuleRecord.filter(enabled=True, id__gt=after_id)
            .order_by("id")
            .limit(limit)
            .values_list("id", "timezone", "schedule", "category", "task_kind", "created_at", "updated_at")
        )
        return [
            (
                row[0],
                row[1],
                row[2] if isinstance(row[2], str) else json.dumps(row[2]),
                row[3],
                row[4],
                instant(row[5]),
                (row[5], row[6]),
            )
            for row in rows
        ]

    async def rule_states(
        self, rule_ids: Iterable[int]
    ) -> dict[int, tuple[bool, datetime | None, tuple[Any, ...]]]:
        """id -> (enabled, expanded_until, version) of these rules that exist."""
        states = {}
        for chunk in _chunks(list(set(rule_ids)), IDS_PER_STATEMENT):
            rows = await _raw(
                RuleRecord.filter(id__in=chunk).values_list(
                    "id", "enabled", "expanded_until", "created_at", "updated_at"
                )
            )
            for row in rows:
                states[row[0]] = (bool(row[1]), None if row[2] is None else instant(row[2]), (row[3], row[4]))
        return states

    async def earliest_computing(self, query: TaskQuery) -> datetime | None:
        """Where the stored occurrences of the rules a listing computes end first (None: no
        such rule); one step down the expanded_until index."""
        first = self._computing(query).order_by("expanded_until").first()
        return await first.values_list("expanded_until", flat=True)

    async def any_computing_rule(self, query: TaskQuery) -> bool:
        return await self._computing(query).exists()

    async def stored_original_times(
        self, rule_ids: Iterable[int], start: datetime, end: datetime
    ) -> set[tuple[int, datetime]]:
        """(rule, original time) of stored occurrences in a window, edited or not."""
        ids = list(rule_ids)
        if not ids:
            return set()
        rows = await TaskRecord.filter(
            rule_id__in=ids, original_at__gte=start, original_at__lt=end
        ).values_list("rule_id", "original_at")
        return {(rule_id, original_at) for rule_id, original_at in rows}

    async def stored_task_ids(self, task_ids: Iterable[str]) -> set[str]:
        ids = [task_id for task_id in set(task_ids) if _fits(TaskRecord, "id", task_id)]
        found: set[str] = set()
        for chunk in _chunks(ids, IDS_PER_STATEMENT):
            found.update(await TaskRecord.filter(id__in=chunk).values_list("id", flat=True))
        return found

    def _matching(self, match: TaskMatch) -> QuerySet[TaskRecord]:
        query = TaskRecord.all()
        if match.kind is not None:
            query = query.filter(kind=match.kind)
        if match.rule_id is not None:
            query = query.filter(rule_id=match.rule_id)
        if match.ids:
            ids = [task_id for task_id in match.ids if _fits(TaskRecord, "id", task_id)]
            query = query.filter(id__in=ids)
        if match.start is not None:
            query = query.filter(scheduled_at__gte=match.start)
        if match.end is not None:
            query = query.filter(scheduled_at__lt=match.end)
        if match.status is not None:
            query = query.filter(status=match.status)
        return query

    async def _returnable(self, now: datetime) -> Q:
        """Tasks whose occurrence their rule would bring back if the row went away.

        A rule stores, lists and (after an edit) regenerates only occurrences after now,
        or after where its stored ones end when it lags behind (downtime); a lagging rule
        is given the earliest such end of all, which errs towards keeping a row.
        """
        current = RuleRecord.filter(Q(expanded_until__isnull=True) | Q(expanded_until__gte=now))
        returnable = Q(rule_id__in=Subquery(current.values("id")), original_at__gt=now)
        lagging = RuleRecord.filter(expanded_until__lt=now)
        oldest = await lagging.order_by("expanded_until").first().values_list("expanded_until", flat=True)
        if oldest is not None:
            returnable |= Q(rule_id__in=Subquery(lagging.values("id")), original_at__gt=oldest)
        return returnable

    @retrying
    async def delete_tasks(self, match: TaskMatch, now: datetime, *, skipped: dict[str, Any]) -> TaskDeletion:
        """Delete the matching tasks, each the only way that keeps it deleted:

        - one being dispatched under a live lease is left alone (``in_flight``);
        - an occurrence its rule would bring back (see ``_returnable``) stays as a marker,
          set to ``skipped`` (one skipped already stays as it is);
        - any other (history, ad-hoc tasks, a deleted rule's, pending ones already past)
          is removed (``deleted``).
        Run it inside the caller's transaction, so the three go together or not at all.
        """
        query = self._matching(match)
        busy = Q(status=TaskStatus.dispatching.value, lease_until__gte=now)
        returnable = await self._returnable(now)
        marked = query.filter(~busy).filter(returnable)
        already = await marked.filter(status=TaskStatus.skipped.value).count()
        newly = await marked.exclude(status=TaskStatus.skipped.value).update(**skipped)
        # rule_id NULL makes the negated condition unknown: ad-hoc tasks are named outright.
        removable = query.filter(~busy).filter(Q(rule_id__isnull=True) | ~returnable)
        deleted = await removable.delete()
        in_flight = await query.filter(busy).count()
        return TaskDeletion(deleted=deleted, skipped=already + newly, in_flight=in_flight)

    @retrying
    async def delete_future_tasks(self, rule_id: int, after: datetime, *, keep_edited: bool) -> int:
        """Remove a rule's occurrences not yet run after ``after``; optionally keep edited ones."""
        query = self._not_run_after(after).filter(rule_id=rule_id)
        if keep_edited:
            query = query.filter(edited=False)
        return await query.delete()

    def _not_run_after(self, after: datetime) -> QuerySet[TaskRecord]:
        # A task already attempted (waiting for a retry) stays: resending it must go through
        # the fleet lookup its attempt counter triggers.
        return TaskRecord.filter(status=TaskStatus.scheduled.value, attempts=0).filter(
            Q(scheduled_at__gt=after) | Q(original_at__gt=after)
        )

    async def pending_exceptions(self, rule_id: int, after: datetime) -> list[TaskRecord]:
        """A rule's individually edited occurrences (skipped ones too) not run yet after ``after``."""
        return (
            await TaskRecord.filter(
                rule_id=rule_id,
                edited=True,
                attempts=0,
                status__in=(TaskStatus.scheduled.value, TaskStatus.skipped.value),
            )
            .filter(Q(scheduled_at__gt=after) | Q(original_at__gt=after))
            .order_by("original_at")
        )

    @retrying
    async def delete_task_ids(self, task_ids: Iterable[str]) -> int:
        ids = list(task_ids)
        return await TaskRecord.filter(id__in=ids).delete() if ids else 0

    @retrying
    async def update_scheduled_copies(
        self, rule_id: int, category: str | None, target: str | None, kind: str
    ) -> None:
        """Keep what a rule's pending tasks copy from it in step: the target and kind of each,
        and the category of those without their own request."""
        pending = TaskRecord.filter(rule_id=rule_id, status=TaskStatus.scheduled.value)
        await pending.update(target=target, kind=kind)
        await pending.filter(request__isnull=True).update(category=category)

    @retrying
    async def drop_own_requests(self, rule_id: int) -> None:
        """Pending occurrences of a rule whose kind changed go back to the rule's task."""
        await TaskRecord.filter(rule_id=rule_id, status=TaskStatus.scheduled.value).update(request=None)

    # -- dispatch ------------------------------------------------------------------------

    @retrying
    async def claim_due(
        self,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        *,
        busy: Iterable[str] = (),
        saturated: Iterable[str] = (),
        due_by: datetime | None = None,
    ) -> list[ClaimedTask]:
        """Lease up to ``limit`` due tasks (and ones whose lease ran out) to ``owner``, atomically.

        A task is due when its time is at or before ``due_by`` (``now`` unless the caller
        claims ahead of time); a lease has run out when it ended before ``now``.

        ``FOR UPDATE SKIP LOCKED`` lets replicas sharing PostgreSQL or MariaDB claim
        side by side without waiting on or taking each other's rows; SQLite has one writer.
        The attempt counter is raised here, before anything is sent, so that a replica
        that dies after sending leaves a trace the next claimant checks with the fleet.
        Tasks for the ``saturated`` targets are left for later (or for another replica), so
        that a slow fleet's backlog cannot take every dispatch slot from the others.
        """
        busy = list(busy)
        saturated = list(saturated)
        due_by = due_by or now
        db = TaskRecord._meta.db
        dialect = db.capabilities.dialect
        if claim_sql.one_statement_claims(dialect):
            sql, values = claim_sql.claim(
                dialect,
                now=now,
                due_by=due_by,
                owner=owner,
                lease_until=lease_until,
                limit=limit,
                busy=busy,
                saturated=saturated,
                db_time=_db_time,
                columns=TASK_COLUMNS,
            )
            _, rows = await db.execute_query(sql, values)
            return sorted((ClaimedTask.from_row(row) for row in rows), key=lambda task: task.due_at)
        due = Q(status=TaskStatus.scheduled.value, due_at__lte=due_by) | Q(
            status=TaskStatus.dispatching.value, lease_until__lt=now
        )
        query = TaskRecord.filter(due)
        if busy:  # this replica's own dispatches in flight: never claim them twice
            query = query.exclude(id__in=busy)
        query = _not_for(query, saturated)
        async with self.transaction():
            rows = await query.order_by("due_at").limit(limit).select_for_update(skip_locked=True)
            if not rows:
                return []
            ids = [row.id for row in rows]
            await TaskRecord.filter(id__in=ids).update(
                status=TaskStatus.dispatching.value,
                lease_owner=owner,
                lease_until=lease_until,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        for row in rows:
            row.status, row.lease_owner, row.lease_until = TaskStatus.dispatching.value, owner, lease_until
            row.attempts += 1
        return [ClaimedTask.from_record(row) for row in rows]

    @retrying
    async def renew_leases(self, task_ids: Iterable[str], owner: str, lease_until: datetime) -> int:
        """Extend this replica's leases on tasks it is still dispatching."""
        ids = list(task_ids)
        if not ids:
            return 0
        return await TaskRecord.filter(
            id__in=ids, lease_owner=owner, status=TaskStatus.dispatching.value
        ).update(lease_until=lease_until)

    async def last_run_of(self, task_id: str) -> RunRecord | None:
        return await RunRecord.filter(task_id=task_id).order_by("-attempt", "-id").first()

    async def next_due_at(
        self, *, saturated: Iterable[str] = (), claim_ahead: timedelta = timedelta(0)
    ) -> datetime | None:
        """The earliest instant at which a task becomes claimable (for a target not saturated):
        ``claim_ahead`` before a scheduled task is due, or when a lease runs out."""
        db = TaskRecord._meta.db
        sql, values = claim_sql.next_due(db.capabilities.dialect, saturated=list(saturated))
        _, rows = await db.execute_query(sql, values)
        field = TaskRecord._meta.fields_map["due_at"]
        due_at, lease_until = (rows[0][key] for key in ("due_at", "lease_until"))
        times = [field.to_python_value(due_at) - claim_ahead] if due_at is not None else []
        times += [field.to_python_value(lease_until)] if lease_until is not None else []
        return min(times) if times else None

    async def newer_overdue_exists(self, task: TaskRecord, before: datetime) -> bool:
        """Another occurrence of the same rule, later than ``task`` and due before ``before``."""
        return await TaskRecord.filter(
            rule_id=task.rule_id,
            scheduled_at__gt=task.scheduled_at,
            scheduled_at__lt=before,
            enabled=True,
            status__in=(TaskStatus.scheduled.value, TaskStatus.dispatching.value),
        ).exists()

    async def other_dispatching(self, task: TaskRecord, now: datetime) -> bool:
        """Another occurrence of the same rule is being dispatched under a live lease."""
        return await (
            TaskRecord.filter(rule_id=task.rule_id, status=TaskStatus.dispatching.value, lease_until__gte=now)
            .filter(scheduled_at__lt=task.scheduled_at)
            .exists()
        )

    @retrying
    async def settle(self, outcomes: Sequence[Settlement], owner: str) -> list[Settled | None]:
        """Record what happened to claimed tasks, whatever their number, in a few multi-row
        statements: on PostgreSQL, when no failures are to be counted, one statement (tasks
        and runs, atomic); else one transaction (SQLite: begin, tasks, runs, commit).

        A task's status changes only if this replica still holds its claim (None in its
        place otherwise); its run is recorded either way, since the attempt happened. Failures
        in a row are counted in the database, in the order given, so concurrent outcomes and a
        concurrent reset are never lost; a rule that reaches its ``pause_after`` pauses.
        """
        if not outcomes:
            return []
        runs = [_run_values(outcome.run) for outcome in outcomes if outcome.run is not None]
        rows = [_settle_values(outcome) for outcome in outcomes]
        db = TaskRecord._meta.db
        dialect = db.capabilities.dialect
        counting = any(outcome.rule_failed is not None for outcome in outcomes)
        if dialect == "postgres" and runs and not counting:
            # The common case, in one round trip: no transaction to open and close.
            sql, values = claim_sql.settle_and_insert(rows, owner, "runs", RUN_COLUMNS, runs, RUN_TYPES)
            held = {row["id"] for row in (await db.execute_query(sql, values))[1]}
            return [Settled() if outcome.task_id in held else None for outcome in outcomes]
        async with self.transaction() as db:
            if claim_sql.one_statement_claims(dialect):
                sql, values = claim_sql.settle_rows(dialect, rows, owner)
                held = {row["id"] for row in (await db.execute_query(sql, values))[1]}
            else:
                ids = sorted({outcome.task_id for outcome in outcomes})
                sql, values = claim_sql.owned(dialect, ids=ids, owner=owner)
                held = {row["id"] for row in (await db.execute_query(sql, values))[1]}
                mine_rows = [
                    row for outcome, row in zip(outcomes, rows, strict=True) if outcome.task_id in held
                ]
                if mine_rows:
                    await db.execute_many(claim_sql.settle_task(dialect), mine_rows)
            for chunk in _chunks(runs, 500):
                await db.execute_query(*claim_sql.insert_rows(dialect, "runs", RUN_COLUMNS, chunk))
            mine = [outcome for outcome in outcomes if outcome.task_id in held]
            paused = await self._count_failures(db, dialect, mine)
        return [
            Settled(paused_reason=paused.get(id(outcome))) if outcome.task_id in held else None
            for outcome in outcomes
        ]

    async def _count_failures(self, db: Any, dialect: str, outcomes: Sequence[Settlement]) -> dict[int, str]:
        """Count the rules' failures in a row; pause those that reach their limit. Returns
        the pause reason by the ``id()`` of the outcome that paused its rule."""
        runs: dict[int, list[Settlement]] = {}
        for outcome in outcomes:
            if outcome.rule_failed is not None and outcome.rule_id is not None:
                runs.setdefault(outcome.rule_id, []).append(outcome)
        if not runs:
            return {}
        reset, added = [], []
        for rule_id, seen in sorted(runs.items()):
            successes = [i for i, outcome in enumerate(seen) if not outcome.rule_failed]
            since = successes[-1] + 1 if successes else 0
            (reset if successes else added).append([len(seen) - since, rule_id])
        for rows, from_zero in ((reset, True), (added, False)):
            if rows:
                await db.execute_many(claim_sql.add_failures(dialect, reset=from_zero), rows)
        failing = {rule_id: seen for rule_id, seen in runs.items() if seen[-1].rule_failed}
        if not failing:
            return {}
        _, rows = await db.execute_query(*claim_sql.failures_of(dialect, sorted(failing)))
        paused: dict[int, str] = {}
        pauses = []
        for row in rows:
            last = failing[row["id"]][-1]
            if row["paused_reason"] is None and row["consecutive_failures"] >= last.pause_after:
                reason = f"{row['consecutive_failures']} occurrences in a row failed"
                paused[id(last)] = reason
                pauses.append([reason, row["id"]])
        if pauses:
            await db.execute_many(claim_sql.pause(dialect), pauses)
        return paused

    @retrying
    async def release_claims(self, owner: str, now: datetime) -> int:
        """Hand back the tasks this replica holds (graceful shutdown): due again at once."""
        return await TaskRecord.filter(lease_owner=owner, status=TaskStatus.dispatching.value).update(
            status=TaskStatus.scheduled.value, lease_owner=None, lease_until=None, due_at=now, updated_at=now
        )

    @retrying
    async def unclaim(self, task_ids: Iterable[str], owner: str) -> int:
        """Give back tasks just claimed and not started: as they were before the claim."""
        ids = list(task_ids)
        if not ids:
            return 0
        return await TaskRecord.filter(
            id__in=ids, lease_owner=owner, status=TaskStatus.dispatching.value
        ).update(
            status=TaskStatus.scheduled.value, lease_owner=None, lease_until=None, attempts=F("attempts") - 1
        )

    @retrying
    async def retry_now(self, target: str, now: datetime) -> int:
        """Make a target's occurrences that wait for a retry due now: it is back."""
        waiting = TaskRecord.filter(status=TaskStatus.scheduled.value, due_at__gt=now, scheduled_at__lte=now)
        mine = Q(target=target) | Q(target__isnull=True) if target == "default" else Q(target=target)
        return await waiting.filter(mine).update(due_at=now)

    async def count_due(self, now: datetime) -> dict[str, int]:
        """Tasks due and not dispatched yet, by target (``""`` for a task without one)."""
        rows = await (
            TaskRecord.filter(status=TaskStatus.scheduled.value, due_at__lte=now)
            .annotate(n=Count("id"))
            .group_by("target")
            .values_list("target", "n")
        )
        return {target or "": n for target, n in rows}

    async def oldest_expansion(self) -> datetime | None:
        """Where the enabled rule that is furthest behind has its stored occurrences end."""
        return (
            await RuleRecord.filter(enabled=True, expanded_until__isnull=False)
            .order_by("expanded_until")
            .first()
            .values_list("expanded_until", flat=True)
        )

    # -- runs ------------------------------------------------------------------------------

    def _run_query(
        self,
        *,
        rule_id: int | None,
        task_id: str | None,
        outcome: str | None,
        start: datetime | None,
        end: datetime | None,
    ):
        query = RunRecord.all()
        if rule_id is not None:
            query = query.filter(rule_id=rule_id)
        if task_id is not None:
            # An id longer than the column matches no run (the ORM would refuse the filter).
            query = query.filter(task_id=task_id if _fits(RunRecord, "task_id", task_id) else "")
        if outcome is not None:
            query = query.filter(outcome=outcome)
        if start is not None:
            query = query.filter(started_at__gte=start)
        if end is not None:
            query = query.filter(started_at__lt=end)
        return query

    async def list_runs(self, *, limit: int, offset: int, **filters: Any) -> tuple[list[RunRecord], int]:
        query = self._run_query(**filters)
        total = await query.count()
        return await query.order_by("-started_at", "-id").offset(offset).limit(limit), total

    async def last_run(self, rule_id: int) -> RunRecord | None:
        return await RunRecord.filter(rule_id=rule_id).order_by("-started_at", "-id").first()

    async def last_run_times(self, rule_ids: Iterable[int]) -> dict[int, datetime]:
        """When each of these rules' latest run started (rules without runs are left out)."""
        ids = list(set(rule_ids))
        if not ids:
            return {}
        rows = (
            await RunRecord.filter(rule_id__in=ids)
            .annotate(last=Max("started_at"))
            .group_by("rule_id")
            .values_list("rule_id", "last")
        )
        field = RunRecord._meta.fields_map["started_at"]  # an aggregate comes back raw on SQLite
        return {rule_id: field.to_python_value(last) for rule_id, last in rows}

    @retrying
    async def delete_runs(self, **filters: Any) -> int:
        """Remove the runs matching every filter (those ``list_runs`` takes), in one statement."""
        return await self._run_query(**filters).delete()

    @retrying
    async def purge_runs(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` runs that started before ``before``; return how many."""
        ids = (
            await RunRecord.filter(started_at__lt=before)
            .order_by("id")
            .limit(limit)
            .values_list("id", flat=True)
        )
        return await RunRecord.filter(id__in=ids).delete() if ids else 0

    @retrying
    async def purge_finished_tasks(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished tasks scheduled before ``before`` that no run is
        left of; return how many."""
        ids = await (
            TaskRecord.filter(scheduled_at__lt=before, status__in=FINISHED)
            .exclude(id__in=Subquery(RunRecord.all().values("task_id")))
            .order_by("scheduled_at", "id")
            .limit(limit)
            .values_list("id", flat=True)
        )
        return await TaskRecord.filter(id__in=ids).delete() if ids else 0

    # -- targets ---------------------------------------------------------------------------

    async def list_targets(self, *, for_update: bool = False) -> list[TargetRecord]:
        query = TargetRecord.all().order_by("name")
        return await (query.select_for_update() if for_update else query)

    async def get_target(self, name: str) -> TargetRecord | None:
        if not _fits(TargetRecord, "name", name):
            return None
        return await TargetRecord.filter(name=name).first()

    @retrying
    async def insert_target(self, **values: Any) -> TargetRecord:
        try:
            return await TargetRecord.create(**values)
        except IntegrityError:
            raise Conflict(f"a target named {values['name']!r} already exists") from None

    @retrying
    async def save_target(self, record: TargetRecord, **values: Any) -> TargetRecord:
        record.update_from_dict(values)
        await record.save()
        return record

    @retrying
    async def delete_target(self, name: str) -> int:
        return await TargetRecord.filter(name=name).delete()

    async def rules_per_target(self) -> dict[str, int]:
        """How many rules name each target as theirs (the ``target`` column)."""
        rows = await RuleRecord.annotate(rules=Count("id")).group_by("target").values_list("target", "rules")
        return {target: count for target, count in rows if target is not None}

    async def rule_tasks(self, kinds: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
        """The task kind and document of every rule of these kinds."""
        kinds = list(kinds)
        if not kinds:
            return []
        return [
            tuple(row)
            for row in await RuleRecord.filter(task_kind__in=kinds).values_list("task_kind", "task")
        ]

    @retrying
    async def delete_targets(self, names: Iterable[str]) -> int:
        names = list(names)
        return await TargetRecord.filter(name__in=names).delete() if names else 0

    # -- users -----------------------------------------------------------------------------

    async def get_user(self, username: str, *, for_update: bool = False) -> UserRecord | None:
        if not _fits(UserRecord, "username", username):
            return None
        query = UserRecord.filter(username=username)
        if for_update:
            query = query.select_for_update()
        return await query.first()

    async def list_users(self) -> list[UserRecord]:
        return await UserRecord.all().order_by("username")

    @retrying
    async def insert_user(self, **values: Any) -> UserRecord:
        try:
            return await UserRecord.create(**values)
        except IntegrityError:
            raise Conflict(f"a user named {values['username']!r} already exists") from None

    @retrying
    async def save_user(self, record: UserRecord, **values: Any) -> UserRecord:
        record.update_from_dict(values)
        await record.save()
        return record

    @retrying
    async def delete_user(self, username: str) -> int:
        if not _fits(UserRecord, "username", username):
            return 0
        return await UserRecord.filter(username=username).delete()

    async def enabled_admins(self, *, for_update: bool = False) -> list[str]:
        """Usernames of the enabled admins; ``for_update`` locks their rows, so two admins
        cannot demote each other at once and leave none."""
        query = UserRecord.filter(role="admin", enabled=True)
        if for_update:
            query = query.select_for_update()
        return [record.username for record in await query.order_by("username")]


def _fits(model: type[Model], field: str, key: str) -> bool:
    """Whether ``key`` fits the column, so a row could have it: a longer key is no row's, and
    the ORM refuses to compare one rather than find nothing."""
    return len(key) <= model._meta.fields_map[field].max_length


def _db_time(value: datetime) -> Any:
    """A datetime as the tasks table stores it (text in SQLite), for written-out SQL."""
    return TaskRecord._meta.fields_map["due_at"].to_db_value(value, TaskRecord)


def _settle_values(outcome: Settlement) -> list[Any]:
    task = TaskRecord._meta.fields_map
    return [
        outcome.status,
        None if outcome.reason is None else storable(outcome.reason)[0],
        task["updated_at"].to_db_value(outcome.at, TaskRecord),
        None if outcome.due_at is None else task["due_at"].to_db_value(outcome.due_at, TaskRecord),
        outcome.fleet_task_id,
        int(outcome.unsent),
        outcome.task_id,
    ]


def _run_values(run: dict[str, Any]) -> list[Any]:
    """A run's column values, made storable: a run is always recorded, whatever the remote
    party wrote. The answer's JSON text is the encoding that told it storable, not a second."""
    fields = RunRecord._meta.fields_map
    values = []
    for column in RUN_COLUMNS:
        value = run[column]
        if column == "response":
            values.append(None if value is None else _json_text(value))
            continue
        if isinstance(value, str):
            value = storable(value)[0]
        values.append(fields[column].to_db_value(value, RunRecord))
    return values


def _json_text(value: Any) -> str:
    """``value`` made storable, as JSON text for its column."""
    text = storable_json(value)
    if text is None:
        text = json.dumps(storable(value)[0], ensure_ascii=False, separators=(",", ":"))
    return text


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[int]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _not_for(query: QuerySet[TaskRecord], targets: Iterable[str]) -> QuerySet[TaskRecord]:
    """Leave out the tasks for these targets (a task without one goes to ``default``)."""
    targets = list(targets)
    if not targets:
        return query
    # Tortoise's not_in keeps NULL rows: say what a NULL target means explicitly.
    keep = Q(target__isnull=False) & Q(target__not_in=targets)
    return query.filter(keep if "default" in targets else keep | Q(target__isnull=True))


async def _raw(values: Any) -> list[tuple[Any, ...]]:
    """A values_list query's rows as the driver returns them, without per-value conversion."""
    values._choose_db_if_not_chosen()
    values._make_query()
    _, rows = await values._db.execute_query(*values.query.get_parameterized_sql())
    return [tuple(row.values()) if hasattr(row, "values") else tuple(row) for row in rows]
