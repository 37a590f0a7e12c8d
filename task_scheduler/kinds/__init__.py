"""Task kinds: what a rule's ``task`` document holds and what its occurrences send.

Each kind is a small :class:`~task_scheduler.kinds.base.TaskKind` subclass; targets pair a
configuration model with a transport (:class:`~task_scheduler.kinds.base.TargetKind`). The
registry (``kinds.registry``) holds the built-in ones and those other packages declare
under the entry points ``rmf_task_scheduler.task_kinds`` and ``rmf_task_scheduler.target_kinds``.
"""
