"""A window's page of occurrences, by merging, never materialising.

A page comes from a k-way merge (heapq), by (time, id), of:
- the stored tasks, read in keyset pages of the size the page needs;
- each computing rule's occurrences past its stored ones (``expanded_until``), each rule
  a lazy recurrence stream started where the page starts.
Rules are read in the order their stored occurrences end, and only once the merge reaches
that instant, so a page the stored tasks cover reads no rule at all.  A computed occurrence
that is stored (skipped, disabled, moved or given its own request) gives way to the stored
task, which is listed at its own time if that is in the window and matches the filters.

Daily and weekly rules come instead from a phase index (domain.phases) of every enabled
rule, kept in memory and rebuilt when the rules' version (the highest id and the latest
updated_at, two index steps) moves; each candidate it gives is checked against its rule's
row as it is now (version, where its stored occurrences end), and a version that differs
rebuilds the index and the page.  Cost per page: the page and the stored occurrences it
passes, plus, for the other rules, one cheap row per rule whose stored occurrences end
before the page's last item.

The other rules' next occurrence is remembered (``HeadCache``) by the rule's version, so
that paging forward, or asking the same page again, does not recompute every rule past the
stored horizon.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import count, islice
from typing import Any

from task_scheduler.domain import cpu
from task_scheduler.domain.listing import HeadCache, Position, TaskQuery
from task_scheduler.domain.phases import PhaseIndex
from task_scheduler.domain.recurrence import Recurrence
from task_scheduler.domain.tasks import TaskStatus, task_id
from task_scheduler.services.occurrences import (
    SMALLEST_STEP,
    TaskView,
    computed_view,
    recurrence_of,
    task_view,
)
from task_scheduler.storage.orm import RuleRecord, TaskRecord
from task_scheduler.storage.store import Store

# Rules read by the first query while the merge walks past their stored occurrences; each
# further query of the same page reads four times as many, up to RULE_CHUNK_MAX.
RULE_CHUNK = 100
RULE_CHUNK_MAX = 64_000
# Stored tasks read per query, at least (more when the page is larger).
STORED_CHUNK = 100
# Rules whose next occurrence is remembered; about 200 bytes each.
HEAD_CACHE_RULES = 1_000_000
# Rule records read at once when computing heads: bounds the memory a page takes.
RECORDS_PER_READ = 500
# Recurrences kept built (a few KiB each), for the rules pages return most.
RECURRENCE_CACHE = 2000
# What views of occurrences read of their rules and tasks (computed_view, task_view).
VIEW_FIELDS = ("timezone", "enabled", "category", "task_kind", "task")
TASK_VIEW_FIELDS = (
    "rule_id",
    "original_at",
    "status",
    "status_reason",
    "enabled",
    "edited",
    "request",
    "category",
    "kind",
)
# Rules read at once to build the phase index.
INDEX_READ = 5000
# Past this many rules the phase index does not hold, a page reads rules as if it had none.
UNINDEXED_MAX = 2000
# Candidates of the phase index checked against their rules' rows at once, at first.
CANDIDATES = 128


@dataclass(frozen=True)
class Phases:
    """The phase index of one version of the rules, and the enabled rules it does not hold."""

    version: tuple[Any, Any]
    index: PhaseIndex
    unindexed: list[int]


class _Stale(Exception):
    """A rule changed since the phase index was built."""


@dataclass(frozen=True)
class Page:
    items: list[TaskView]
    next: Position | None
    """The last item's position when more follow, else None."""
    total: int | None
    """Every item in the window, when known without computing it: see ``Lister.page``."""


class Lister:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._heads = HeadCache(HEAD_CACHE_RULES)
        self._recurrences: OrderedDict[int, tuple[object, Recurrence]] = OrderedDict()
        self._phases: Phases | None = None
        self._building = asyncio.Lock()

    async def page(self, query: TaskQuery, after: Position | None, offset: int, limit: int) -> Page:
        """Items of the window strictly after ``after`` (from the start if None), skipping
        ``offset`` of them, at most ``limit``.

        ``total`` is exact when it costs nothing more: when this page reached the window's end
        from its start, or when no occurrence in the window is computed (one COUNT of stored
        tasks).  Otherwise it is None: counting would compute the whole window."""
        for indexed in (True, True, False):  # a rule changed while the page was read: again
            merge = _Merge(self, query, after, indexed=indexed)
            try:
                found = await merge.take(offset + limit + 1)
                break
            except _Stale:
                self._phases = None
        more = len(found) > offset + limit
        items = found[offset : offset + limit]
        views = await self._views(items)
        total = None
        if after is None and not more:
            total = len(found)
        elif not merge.computes and not await self._computes(query):
            total = await self._store.count_tasks(
                query.start,
                query.end,
                rule_id=query.rule_id,
                status=query.status,
                category=query.category,
                kind=query.kind,
            )
        last = Position(items[-1][0], items[-1][1]) if more and items else None
        return Page(items=views, next=last, total=total)

    async def _computes(self, query: TaskQuery) -> bool:
        return _may_compute(query) and await self._store.any_computing_rule(query)

    async def _views(self, items: list[tuple[datetime, str, TaskRecord | int]]) -> list[TaskView]:
        rule_ids = {item if isinstance(item, int) else item.rule_id for _, _, item in items}
        rules = await self._store.rules_by_ids((i for i in rule_ids if i is not None), only=VIEW_FIELDS)
        views = []
        for at, _, item in items:
            if isinstance(item, int):
                if item in rules:  # else deleted since the merge read it
                    views.append(computed_view(rules[item], at))
            else:
                views.append(task_view(item, rules.get(item.rule_id)))
        return views

    def recurrence(self, record: RuleRecord, version: object) -> Recurrence:
        kept = self._recurrences.get(record.id)
        if kept is not None and kept[0] == version:
            self._recurrences.move_to_end(record.id)
            return kept[1]
        recurrence = recurrence_of(record)
        self._recurrences[record.id] = (version, recurrence)
        if len(self._recurrences) > RECURRENCE_CACHE:
            self._recurrences.popitem(last=False)
        return recurrence

    def forget(self, rule_id: int) -> None:
        """The rule changed: compute it afresh. Its version (created and updated times) would
        say so too, but two edits within the clock's resolution would share one."""
        self._heads.forget(rule_id)
        self._recurrences.pop(rule_id, None)
        self._phases = None

    async def phases(self) -> Phases | None:
        """The phase index of the rules as they are now; None when too many rules are not
        indexable for it to pay."""
        version = await self._store.rules_version()
        async with self._building:
            if self._phases is None or self._phases.version != version:
                self._phases = None  # let the old one go before building the new one
                with cpu.shared():  # every request reads it
                    self._phases = await self._build(version)
        return self._phases if len(self._phases.unindexed) <= UNINDEXED_MAX else None

    async def _build(self, version: tuple[Any, Any]) -> Phases:
        index = PhaseIndex()
        unindexed = []
        after_id = 0
        while rows := await self._store.enabled_rules(after_id, INDEX_READ):
            for rule_id, zone, schedule, category, kind, created_at, rule_version in rows:
                if not index.add(rule_id, rule_version, zone, category, kind, schedule, created_at):
                    unindexed.append(rule_id)
            after_id = rows[-1][0]
        index.seal()
        return Phases(version, index, unindexed)

    def cached_recurrence(self, rule_id: int, version: object) -> Recurrence | None:
        kept = self._recurrences.get(rule_id)
        return kept[1] if kept is not None and kept[0] == version else None


def _may_compute(query: TaskQuery) -> bool:
    """Computed occurrences are all pending: a status filter other than scheduled has none."""
    return query.status in (None, TaskStatus.scheduled.value)


# A heap entry: (time, id, tie-breaker, stored task | rule id of a computed occurrence).
_Entry = tuple[datetime, str, int, "TaskRecord | int"]


class _Merge:
    """One page's merge; see the module docstring."""

    def __init__(self, lister: Lister, query: TaskQuery, after: Position | None, *, indexed: bool) -> None:
        self._lister = lister
        self._indexed = indexed and query.rule_id is None
        self._phases: Phases | None = None
        self._candidates: Iterator[tuple[datetime, str, int]] | None = None
        self._checked: deque[tuple[datetime, str, int]] = deque()
        self._check_size = CANDIDATES
        self._store = lister._store
        self._query = query
        self._after = after
        self._heap: list[_Entry] = []
        self._seq = count()
        self._stored: deque[TaskRecord] = deque()
        self._stored_last: Position | None = after
        self._stored_more = True
        self._rules_more = _may_compute(query)
        self._rules_last: tuple[datetime, int] | None = None
        self._rule_chunk = RULE_CHUNK
        self._rules_floor: datetime | None = None
        self._rules: deque[tuple[int, datetime, object]] = deque()  # read, stream not started
        self._streams: dict[int, Iterator[datetime]] = {}
        self._versions: dict[int, object] = {}
        self._suffixes: dict[datetime, str] = {}
        self._taken: tuple[datetime, TaskRecord | int] | None = None
        self.computes = False  # a rule computes occurrences in the window

    async def take(self, n: int) -> list[tuple[datetime, str, TaskRecord | int]]:
        """The next n items, stored ones and computed ones not stored."""
        found: list[tuple[datetime, str, TaskRecord | int]] = []
        await self._read_stored(n)
        while len(found) < n:
            batch = await self._next(n - len(found))
            if not batch:
                break
            computed = [entry_id for _, entry_id, item in batch if isinstance(item, int)]
            taken = await self._store.stored_task_ids(computed) if computed else set()
            found.extend(entry for entry in batch if not (isinstance(entry[2], int) and entry[1] in taken))
        return found

    async def _next(self, n: int) -> list[tuple[datetime, str, TaskRecord | int]]:
        batch = []
        while len(batch) < n:
            if self._taken is not None:
                await self._replace(*self._taken, n - len(batch))
                self._taken = None
            await self._read_rules()
            if not self._heap:
                break
            at, entry_id, _, item = heapq.heappop(self._heap)
            batch.append((at, entry_id, item))
            self._taken = (at, item)  # its source's next item is read once another is needed
        return batch

    async def _replace(self, at: datetime, item: TaskRecord | int, n: int) -> None:
        """Push the next item of the source ``item`` came from."""
        if isinstance(item, int) and self._phases is not None and item in self._phases.index.rules:
            await self._push_candidate()
        elif isinstance(item, int):
            await self._advance(item, at)
        else:
            await self._push_stored(n)

    async def _read_stored(self, n: int) -> None:
        size = max(n, STORED_CHUNK)
        records = await self._store.tasks_after(self._query, self._stored_last, size, only=TASK_VIEW_FIELDS)
        self._stored_more = len(records) == size
        if records:
            last = records[-1]
            self._stored_last = Position(last.scheduled_at, last.id)
        self._stored.extend(records)
        await self._push_stored(n)

    async def _push_stored(self, n: int) -> None:
        if not self._stored and self._stored_more:
            await self._read_stored(n)
            return
        if self._stored:
            record = self._stored.popleft()
            heapq.heappush(self._heap, (record.scheduled_at, record.id, next(self._seq), record))

    async def _read_rules(self) -> None:
        """Start the streams of the rules whose computed occurrences may come before the heap's
        first item: those whose stored occurrences end before it (their next one is after)."""
        while True:
            top = self._heap[0][0] if self._heap else None
            ready = []
            while self._rules and (top is None or self._rules[0][1] < top):
                ready.append(self._rules.popleft())
            if ready:
                await self._start_streams(ready)
                continue  # the first item may have changed
            if self._rules or not self._rules_more:
                return
            if self._rules_floor is None:
                # Where the earliest stored occurrences end: a page before it reads no rule.
                self._rules_floor = await self._store.earliest_computing(self._query)
                if self._rules_floor is None:
                    self._rules_more = False
                    return
                self.computes = True
            floor = self._rules_last[0] if self._rules_last is not None else self._rules_floor
            if top is not None and floor >= top:
                return  # every rule not read yet has its stored occurrences end after top
            if self._indexed:
                await self._start_index()
                continue  # the first item may have changed
            if self._phases is not None and not self._phases.unindexed:
                self._rules_more = False
                return
            chunk = self._rule_chunk
            self._rule_chunk = min(4 * chunk, RULE_CHUNK_MAX)
            among = None if self._phases is None else self._phases.unindexed
            rows = await self._store.computing_rules(self._query, self._rules_last, chunk, among)
            self._rules_more = len(rows) == chunk
            if not rows:
                return
            self.computes = True
            self._rules_last = (rows[-1][1], rows[-1][0])
            self._rules.extend(rows)

    async def _start_index(self) -> None:
        """Daily and weekly rules from the phase index, from where stored occurrences end first."""
        self._indexed = False  # once
        self._phases = await self._lister.phases()
        if self._phases is None:
            return
        query = self._query
        assert self._rules_floor is not None
        lo = max(query.start, self._rules_floor)
        if self._after is not None:
            lo = max(lo, self._after.at)
        self._candidates = self._phases.index.candidates(lo, query.end, query.category, query.kind)
        await self._push_candidate()

    async def _push_candidate(self) -> None:
        """Push the index's next candidate that its rule, as it is now, computes."""
        assert self._phases is not None and self._candidates is not None
        while not self._checked:
            cpu.check()
            chunk = list(islice(self._candidates, self._check_size))
            if not chunk:
                return
            self._check_size = min(4 * self._check_size, RULE_CHUNK_MAX)
            states = await self._store.rule_states(rule_id for _, _, rule_id in chunk)
            rules = self._phases.index.rules
            for at, entry_id, rule_id in chunk:
                state = states.get(rule_id)
                if state is None:
                    continue  # deleted since
                enabled, expanded_until, version = state
                if version != rules[rule_id].version:
                    raise _Stale
                if (
                    enabled
                    and expanded_until is not None
                    and at > expanded_until
                    and self._after_cursor(rule_id, at)
                ):
                    self._checked.append((at, entry_id, rule_id))
        at, entry_id, rule_id = self._checked.popleft()
        heapq.heappush(self._heap, (at, entry_id, next(self._seq), rule_id))

    def _from(self, expanded_until: datetime) -> datetime:
        """The earliest a rule's computed occurrence in this page can be."""
        at = max(expanded_until + SMALLEST_STEP, self._query.start)
        return at if self._after is None else max(at, self._after.at)

    async def _start_streams(self, rows: list[tuple[int, datetime, object]]) -> None:
        unknown = []
        end = self._query.end
        for rule_id, expanded_until, version in rows:
            cpu.check()
            self._versions[rule_id] = version
            at = self._from(expanded_until)
            head = self._lister._heads.get(rule_id, version, at, end)
            if head is HeadCache.UNKNOWN or (head is not None and not self._after_cursor(rule_id, head)):
                unknown.append((rule_id, at))
            elif head is not None:
                self._push_computed(rule_id, head)
        for first in range(0, len(unknown), RECORDS_PER_READ):
            await self._find_heads(unknown[first : first + RECORDS_PER_READ])

    async def _find_heads(self, unknown: list[tuple[int, datetime]]) -> None:
        """Compute these rules' first occurrences from ``at``, and remember them.  Streams are
        not kept (a few KiB each): a rule's is made again once its head is taken."""
        end = self._query.end
        records = await self._store.rules_by_ids(rule_id for rule_id, _ in unknown)
        for rule_id, at in unknown:
            record = records.get(rule_id)
            if record is None:
                continue  # deleted since
            stream = self._stream(record, self._versions[rule_id], at)
            head = next(stream, None)
            while head is not None and not self._after_cursor(rule_id, head):
                at = head + SMALLEST_STEP  # the cursor's own item, already listed
                head = next(stream, None)
            self._lister._heads.put(rule_id, self._versions[rule_id], at, head, end)
            if head is not None:
                self._push_computed(rule_id, head)

    def _stream(self, record: RuleRecord, version: object, at: datetime) -> Iterator[datetime]:
        recurrence = self._lister.recurrence(record, version)
        return recurrence.between(at, self._query.end - SMALLEST_STEP, inclusive=True)

    def _after_cursor(self, rule_id: int, at: datetime) -> bool:
        after = self._after
        return after is None or at > after.at or (at == after.at and self._task_id(rule_id, at) > after.id)

    def _push_computed(self, rule_id: int, at: datetime) -> None:
        heapq.heappush(self._heap, (at, self._task_id(rule_id, at), next(self._seq), rule_id))

    def _task_id(self, rule_id: int, at: datetime) -> str:
        """task_id(), its time part made once per instant: many rules share their times."""
        suffix = self._suffixes.get(at)
        if suffix is None:
            suffix = self._suffixes[at] = task_id(0, at)[1:]
        return f"{rule_id}{suffix}"

    async def _advance(self, rule_id: int, at: datetime) -> None:
        """Push the rule's occurrence after ``at``, the one just taken."""
        stream = self._streams.get(rule_id)
        if stream is None:
            recurrence = self._lister.cached_recurrence(rule_id, self._versions[rule_id])
            if recurrence is None:
                record = await self._store.get_rule(rule_id)
                if record is None:
                    return
                recurrence = self._lister.recurrence(record, self._versions[rule_id])
            stream = recurrence.between(at, self._query.end - SMALLEST_STEP)
            self._streams[rule_id] = stream
        head = next(stream, None)
        if head is not None:
            self._push_computed(rule_id, head)
