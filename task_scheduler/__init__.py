"""rmf-task-scheduler: recurring task rules for Open-RMF fleets."""

__version__ = "0.1.0"
