"""``sql``: run one of the queries an admin configured on a ``database`` target.

A rule picks the query by name and gives its parameters, which are always bound by the
driver, never pasted into the SQL; there is no field for SQL of its own. A read keeps its
rows in the run (bounded), a write the number of rows it affected.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from task_scheduler.domain.sql import parse
from task_scheduler.domain.targets import DatabaseTarget, dialect_of
from task_scheduler.kinds.base import Occurrence, Problems, TaskKind


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError("a parameter is a JSON scalar: a string, number, boolean or null")
    return value


Scalar = Annotated[Any, AfterValidator(_scalar)]


class SqlTask(BaseModel):
    """Run the query ``query`` of the database target ``target`` with ``params``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql"] = Field(description="Run a query configured on a database target.")
    target: str = Field(min_length=1, max_length=128, description="A database target; see /targets.")
    query: str = Field(
        min_length=1,
        max_length=63,
        examples=["purge_old"],
        description="The name of a query the target configures.",
    )
    params: dict[Annotated[str, Field(max_length=63)], Scalar] = Field(
        default_factory=dict,
        max_length=100,
        examples=[{"days": 30}],
        description="A JSON scalar for each :name parameter of the query, no more and no fewer.",
    )


class SqlKind(TaskKind):
    name = "sql"
    spec = SqlTask
    target_kinds = frozenset({"database"})

    def check_target(self, task: BaseModel, target: BaseModel) -> Problems:
        """The query exists on the target and the params are exactly its parameters."""
        assert isinstance(task, SqlTask) and isinstance(target, DatabaseTarget)
        query = target.queries.get(task.query)
        if query is None:
            known = ", ".join(sorted(target.queries))
            return [(("query",), f"target {task.target!r} has no query {task.query!r} (it has: {known})")]
        wanted = parse(query.sql, dialect_of(target.url)).parameters
        problems: Problems = [
            (("params", name), f"query {task.query!r} has no parameter :{name}")
            for name in task.params
            if name not in wanted
        ]
        problems += [
            (("params", name), f"query {task.query!r} needs a value for :{name}")
            for name in wanted
            if name not in task.params
        ]
        return problems

    def build(self, document: dict[str, Any], occurrence: Occurrence) -> dict[str, Any]:
        return {"query": document["query"], "params": document.get("params") or {}}

    def resend_safe(self, document: dict[str, Any]) -> bool:
        """False: whether the query writes is the target's to say, which a document cannot
        tell. The transport itself reports a read, or a write stopped before its commit,
        as a clear (retried) failure; only an attempt cut off during a commit stays unknown."""
        return False
