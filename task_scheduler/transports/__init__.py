"""Outbound transports: how the dispatcher hands a task to its target."""

from task_scheduler.transports.auth import BearerAuth
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome, Transport
from task_scheduler.transports.rmf_http import RmfHttpTransport
from task_scheduler.transports.rmf_ws import RmfWsTransport

__all__ = [
    "BearerAuth",
    "Delivery",
    "LookupFailed",
    "Outcome",
    "RmfHttpTransport",
    "RmfWsTransport",
    "Transport",
]
