"""Domain errors; the API maps them to 404, 409 and 422."""

from __future__ import annotations


class NotFound(Exception):
    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class Conflict(Exception):
    """The request clashes with the stored state (duplicate name, task already run)."""


class Invalid(Exception):
    """A value is well-formed JSON but not acceptable; ``loc`` names the field."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
        self.problems = problems

    @classmethod
    def at(cls, loc: tuple[str | int, ...], message: str) -> Invalid:
        return cls([(loc, message)])


class Unauthenticated(Exception):
    """No usable credentials: no token, a bad or expired one, or a failed login (401)."""


class Forbidden(Exception):
    """The caller is known but their role does not allow this (403)."""


class TooManyAttempts(Exception):
    """Too many failed logins for a name or from an address (429); ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Busy(TooManyAttempts):
    """Every slot for the work is taken and none freed in time (503); try again shortly."""
