"""Every query the service makes, in one place; callers get and give plain records.

Callers own transactions (``Store.transaction()``); every method here runs inside the
caller's transaction when there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from task_scheduler.domain.errors import Conflict
from task_scheduler.domain.tasks import TaskStatus
from task_scheduler.storage.orm import RuleRecord, TaskRecord


class Store:
    def transaction(self):
        return in_transaction()

    # -- rules ---------------------------------------------------------------------------

    async def insert_rule(self, **values: Any) -> RuleRecord:
        try:
            return await RuleRecord.create(**values)
        except IntegrityError:
            raise Conflict(f"a rule named {values['name']!r} already exists") from None

    async def get_rule(self, rule_id: int, *, for_update: bool = False) -> RuleRecord | None:
        query = RuleRecord.filter(id=rule_id)
        if for_update:
            query = query.select_for_update()
        return await query.first()

    async def rules_by_ids(self, rule_ids: Iterable[int]) -> dict[int, RuleRecord]:
        ids = list(set(rule_ids))
        if not ids:
            return {}
        return {record.id: record for record in await RuleRecord.filter(id__in=ids)}

    async def list_rules(
        self,
        *,
        enabled: bool | None = None,
        category: str | None = None,
        name_contains: str | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[RuleRecord], int]:
        query = RuleRecord.all()
        if enabled is not None:
            query = query.filter(enabled=enabled)
        if category is not None:
            query = query.filter(category=category)
        if name_contains:
            query = query.filter(name__icontains=name_contains)
        total = await query.count()
        records = await query.order_by("id").offset(offset).limit(limit)
        return records, total

    async def save_rule(self, record: RuleRecord, **values: Any) -> RuleRecord:
        record.update_from_dict(values)
        try:
            await record.save()
        except IntegrityError:
            raise Conflict(f"a rule named {record.name!r} already exists") from None
        return record

    async def delete_rule(self, rule_id: int) -> None:
        await RuleRecord.filter(id=rule_id).delete()

    async def rules_to_expand(self, below: datetime, after_id: int, limit: int) -> list[RuleRecord]:
        """Enabled rules whose stored occurrences end before ``below``, in id order from ``after_id``."""
        return (
            await RuleRecord.filter(enabled=True, expanded_until__lt=below, id__gt=after_id)
            .order_by("id")
            .limit(limit)
        )

    async def set_expanded_until(self, rule_id: int, until: datetime | None) -> None:
        await RuleRecord.filter(id=rule_id).update(expanded_until=until)

    async def rules_unexpanded_before(self, until: datetime) -> list[RuleRecord]:
        """Enabled rules with occurrences not yet stored before ``until`` (computed on the fly)."""
        return await RuleRecord.filter(enabled=True, expanded_until__lt=until).order_by("id")

    # -- tasks ---------------------------------------------------------------------------

    async def insert_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Store occurrences; ones already stored (same rule and original time) are kept as they are."""
        if records:
            await TaskRecord.bulk_create(records, ignore_conflicts=True)

    async def get_task(self, task_id: str, *, for_update: bool = False) -> TaskRecord | None:
        query = TaskRecord.filter(id=task_id)
        if for_update:
            query = query.select_for_update()
        return await query.first()

    async def create_task(self, **values: Any) -> TaskRecord:
        try:
            return await TaskRecord.create(**values)
        except IntegrityError:
            raise Conflict(f"task {values['id']!r} was stored concurrently; retry") from None

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
    ):
        query = TaskRecord.filter(scheduled_at__gte=start, scheduled_at__lt=end)
        if rule_id is not None:
            query = query.filter(rule_id=rule_id)
        if status is not None:
            query = query.filter(status=status)
        if category is not None:
            query = query.filter(category=category)
        return query

    async def count_tasks(self, start: datetime, end: datetime, **filters: Any) -> int:
        return await self._task_query(start, end, **filters).count()

    async def list_tasks(
        self, start: datetime, end: datetime, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[TaskRecord]:
        query = self._task_query(start, end, **filters).order_by("scheduled_at", "id").offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return await query

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

    async def delete_future_tasks(self, rule_id: int, after: datetime, *, keep_edited: bool) -> int:
        """Remove a rule's occurrences not yet run after ``after``; optionally keep edited ones."""
        query = TaskRecord.filter(rule_id=rule_id, status=TaskStatus.scheduled.value).filter(
            Q(scheduled_at__gt=after) | Q(original_at__gt=after)
        )
        if keep_edited:
            query = query.filter(edited=False)
        return await query.delete()

    async def update_scheduled_category(self, rule_id: int, category: str | None) -> None:
        """Keep the copied category of a rule's pending tasks without their own request in step."""
        await TaskRecord.filter(
            rule_id=rule_id, request__isnull=True, status=TaskStatus.scheduled.value
        ).update(category=category)
