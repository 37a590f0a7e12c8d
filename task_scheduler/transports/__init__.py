"""Outbound transports: how the dispatcher hands a task to an Open-RMF fleet manager."""

from task_scheduler.transports.auth import BearerAuth
from task_scheduler.transports.base import Delivery, LookupFailed, Outcome, Transport, build_transport
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
    "build_transport",
]
