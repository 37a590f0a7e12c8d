"""Database records.  Only the storage layer imports this module."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RuleRecord(Model):
    """A recurring rule as stored; JSON columns hold the validated API documents."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    description = fields.TextField()
    timezone = fields.CharField(max_length=64)
    enabled = fields.BooleanField(default=True, db_index=True)
    schedule = fields.JSONField()
    # Version of the stored schedule document, so a later format can be migrated.
    schedule_version = fields.SmallIntField(default=1)
    task = fields.JSONField()
    policy = fields.JSONField()
    metadata = fields.JSONField()
    # Copied out of `task` so that list filters are plain indexed columns.
    task_kind = fields.CharField(max_length=32)
    category = fields.CharField(max_length=128, null=True, db_index=True)
    target = fields.CharField(max_length=128, null=True)
    channel = fields.CharField(max_length=128, null=True)
    # Occurrences that failed in a row; at policy.max_attempts the rule pauses itself.
    consecutive_failures = fields.IntField(default=0)
    paused_reason = fields.CharField(max_length=255, null=True)
    # Occurrences up to this instant are stored as tasks; NULL once the rule is disabled.
    expanded_until = fields.DatetimeField(null=True, db_index=True)
    created_at = fields.DatetimeField()
    # Indexed: a listing reads the latest change to tell whether its rules are current.
    updated_at = fields.DatetimeField(db_index=True)
    # Who created and last changed the rule; NULL when authentication is off, and for rules
    # stored before users existed.
    created_by = fields.CharField(max_length=128, null=True)
    updated_by = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "rules"
        # Where the enabled rules' stored occurrences end first, in one step (a listing).
        indexes = (("enabled", "expanded_until"),)


class TaskRecord(Model):
    """One occurrence of a rule, stored once the horizon reaches it or once edited.

    ``rule_id`` is a plain column, not a foreign key: history outlives a deleted rule.
    """

    id = fields.CharField(max_length=64, primary_key=True)
    rule_id = fields.IntField(null=True)
    original_at = fields.DatetimeField()
    scheduled_at = fields.DatetimeField(db_index=True)
    status = fields.CharField(max_length=16, default="scheduled", db_index=True)
    status_reason = fields.CharField(max_length=255, null=True)
    enabled = fields.BooleanField(default=True)
    # Individually edited (moved, disabled, own request, deleted): kept when the series changes.
    edited = fields.BooleanField(default=False)
    request = fields.JSONField(null=True)
    category = fields.CharField(max_length=128, null=True, db_index=True)
    # The task kind (rmf, http, sql, file, ...): its rule's, copied, or an ad-hoc task's own.
    kind = fields.CharField(max_length=32, default="rmf", db_index=True)
    # The target the task goes to: its rule's, copied (so claims can filter on it), or an
    # ad-hoc task's own.
    target = fields.CharField(max_length=128, null=True)
    # When the dispatcher acts: scheduled_at less the lead time, or the next retry.
    due_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    fleet_task_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "tasks"
        indexes = (("status", "due_at"),)
        unique_together = (("rule_id", "original_at"),)


class RunRecord(Model):
    """One attempt to execute a task: the history."""

    id = fields.BigIntField(primary_key=True)
    task_id = fields.CharField(max_length=64, db_index=True)
    rule_id = fields.IntField(null=True, db_index=True)
    attempt = fields.IntField()
    started_at = fields.DatetimeField(db_index=True)
    finished_at = fields.DatetimeField()
    duration_ms = fields.FloatField()
    outcome = fields.CharField(max_length=16, db_index=True)
    fleet_task_id = fields.CharField(max_length=255, null=True)
    response = fields.JSONField(null=True)
    error = fields.TextField(null=True)
    replica = fields.CharField(max_length=64)

    class Meta:
        table = "runs"


class TargetRecord(Model):
    """A named connection a rule's task is sent through (an RMF api-server or bridge)."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128, unique=True)
    kind = fields.CharField(max_length=32)
    config = fields.JSONField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "targets"


class UserRecord(Model):
    """A built-in user; the password is kept only as an argon2id hash."""

    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=128, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharField(max_length=16)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "users"


class HealthRecord(Model):
    """The readiness probe's row: written and deleted in one committed transaction, so the
    table stays empty while each probe proves the database takes a write that needs space."""

    id = fields.CharField(max_length=36, primary_key=True)
    pad = fields.BinaryField()

    class Meta:
        table = "health"
