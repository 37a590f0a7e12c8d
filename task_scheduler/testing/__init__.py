"""Test doubles that are real servers: what end-to-end tests and benchmarks dispatch to.

Nothing here is imported by the service itself. :mod:`task_scheduler.testing.fake_fleet`
is a fake Open-RMF fleet manager (the api-server's task routes and websocket bridge), also
as a restartable process; :mod:`task_scheduler.testing.service_process` runs the service
itself as a process that can be killed and started again.
"""
