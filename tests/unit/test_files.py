"""Paths, templates and the disk half of the file transport, each tried against escapes."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from task_scheduler.domain.files import check_template, render, segments
from task_scheduler.domain.targets import DirectoryTarget
from task_scheduler.kinds.base import Occurrence
from task_scheduler.kinds.file import FileKind, FileTask
from task_scheduler.transports.base import Outcome
from task_scheduler.transports.file import Stop, read_file, write_file

WHEN = datetime(2026, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\x00b", "x" * 256, ".."],
)
def test_paths_that_leave_or_hide_their_directory_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        segments(path)


def test_plain_relative_paths_pass() -> None:
    assert segments("reports/2026/a..b.csv") == ["reports", "2026", "a..b.csv"]


def test_a_template_renders_the_occurrence_in_utc() -> None:
    assert render("a-{scheduled_at:%Y%m%dT%H%M}.csv", WHEN) == "a-20260105T1200.csv"
    assert render("{scheduled_at:%Y/%m}/{{x}}.csv", WHEN) == "2026/01/{x}.csv"


@pytest.mark.parametrize(
    "template",
    [
        "{scheduled_at}",  # no format
        "{now:%Y}",
        "{scheduled_at.tzinfo}",
        "{scheduled_at!r:%Y}",
        "{scheduled_at:{x}}",
        "{0}",
        "a{",
        "{scheduled_at:%Y}/../x",
        "{scheduled_at:/%Y}",  # renders absolute
        "{scheduled_at:%Y/..}",
    ],
)
def test_templates_are_checked_before_they_run(template: str) -> None:
    with pytest.raises(ValueError):
        check_template(template)


def test_a_task_takes_the_directory_it_writes_to_as_its_target() -> None:
    copy = FileTask.model_validate(
        {
            "kind": "file",
            "op": "copy",
            "source": {"target": "inbox", "path": "a.csv"},
            "destination": {"target": "archive", "path": "a-{scheduled_at:%H}.csv"},
        }
    )
    read = FileTask.model_validate({"kind": "file", "op": "read", "source": {"target": "inbox", "path": "a"}})
    assert (copy.target, read.target) == ("archive", "inbox")
    assert FileKind(None).other_targets(copy) == [(("source", "target"), "inbox")]
    with pytest.raises(ValidationError, match="leave it out"):
        FileTask.model_validate({**copy.model_dump(), "target": "inbox"})
    assert FileTask.model_validate(copy.model_dump()).target == "archive"  # a stored one round-trips


@pytest.mark.parametrize(
    "task",
    [
        {"op": "read"},
        {"op": "read", "source": {"url": "http://127.0.0.1/a"}, "content": "x"},
        {"op": "write", "destination": {"target": "a", "path": "b"}},
        {"op": "copy", "source": {"target": "a", "path": "b"}},
        {"op": "read", "source": {"target": "a"}},
        {"op": "read", "source": {"target": "a", "path": "b", "url": "http://127.0.0.1/"}},
        {"op": "read", "source": {"url": "file:///etc/passwd"}},
        {"op": "write", "content": "x", "destination": {"target": "a", "path": "b", "method": "POST"}},
    ],
)
def test_a_task_of_the_wrong_shape_is_refused(task: dict) -> None:
    with pytest.raises(ValidationError):
        FileTask.model_validate({"kind": "file", **task})


def test_build_renders_paths_and_resend_safety_follows_the_method() -> None:
    kind = FileKind(None)
    document = {
        "kind": "file",
        "op": "copy",
        "target": "archive",
        "source": {"url": "http://127.0.0.1/r"},
        "destination": {"target": "archive", "path": "r-{scheduled_at:%H%M}"},
    }
    occurrence = Occurrence(task_id="1-x", rule_id=1, scheduled_at=WHEN, now=WHEN, requester="t")
    message = kind.build(document, occurrence)
    assert message["destination"]["path"] == "r-1200" and "kind" not in message and "target" not in message
    assert kind.resend_safe(document)
    assert not kind.resend_safe({**document, "destination": {"url": "http://h/", "method": "POST"}})


def test_check_target_wants_a_writable_directory_large_enough() -> None:
    task = FileTask.model_validate(
        {"kind": "file", "op": "write", "content": "12345", "destination": {"target": "out", "path": "f"}}
    )
    small = DirectoryTarget(path="/tmp", writable=False, max_file_bytes=4)
    fields = [field for field, _ in FileKind(None).check_target(task, small)]
    assert fields == [("destination", "target"), ("content",)]
    assert FileKind(None).check_target(task, DirectoryTarget(path="/tmp", writable=True)) == []


def test_a_directory_target_path_must_be_absolute() -> None:
    with pytest.raises(ValidationError):
        DirectoryTarget(path="srv/x")
    assert DirectoryTarget(path="/srv/x/../y/").path == "/srv/y"


# -- on disk -----------------------------------------------------------------------------


def outcome(call, *args) -> tuple[Outcome, str]:
    with pytest.raises(Stop) as stopped:
        call(*args)
    return stopped.value.delivery.outcome, stopped.value.delivery.error or ""


@pytest.fixture
def box(tmp_path):
    root = tmp_path / "box"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("secret")
    return root


def test_reads_and_writes_stay_inside_and_write_atomically(box) -> None:
    directory = DirectoryTarget(path=str(box), writable=True, max_file_bytes=100)
    assert read_file(directory, "sub/a.txt", 100) == b"hello"
    write_file(directory, "new/deeper/b.txt", b"data")
    write_file(directory, "new/deeper/b.txt", b"data2")
    assert (box / "new" / "deeper" / "b.txt").read_bytes() == b"data2"
    assert sorted(os.listdir(box / "new" / "deeper")) == ["b.txt"]  # no temporary file left


def test_symbolic_links_are_never_followed(box, tmp_path) -> None:
    directory = DirectoryTarget(path=str(box), writable=True)
    (box / "out").symlink_to(tmp_path)  # a directory outside
    (box / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (box / "inner").symlink_to(box / "sub")  # even one that stays inside
    assert outcome(read_file, directory, "out/secret.txt", 100)[0] is Outcome.REJECTED
    assert outcome(read_file, directory, "leak.txt", 100)[0] is Outcome.REJECTED
    assert outcome(read_file, directory, "inner/a.txt", 100)[0] is Outcome.REJECTED
    assert outcome(write_file, directory, "out/x.txt", b"x")[0] is Outcome.REJECTED
    assert not (tmp_path / "x.txt").exists()
    write_file(directory, "leak.txt", b"replaced")  # replaces the link, not what it points at
    assert (tmp_path / "secret.txt").read_text() == "secret"
    assert not (box / "leak.txt").is_symlink()


def test_a_root_given_through_a_link_still_works(box, tmp_path) -> None:
    (tmp_path / "alias").symlink_to(box)
    assert read_file(DirectoryTarget(path=str(tmp_path / "alias")), "sub/a.txt", 100) == b"hello"


def test_escapes_in_the_text_limits_and_special_files_are_refused(box) -> None:
    directory = DirectoryTarget(path=str(box), writable=True, max_file_bytes=3)
    assert outcome(read_file, directory, "../secret.txt", 100)[0] is Outcome.REJECTED
    assert outcome(read_file, directory, "sub", 100)[0] is Outcome.REJECTED  # a directory
    os.mkfifo(box / "pipe")
    assert outcome(read_file, directory, "pipe", 100)[0] is Outcome.REJECTED  # without blocking
    outcome_, error = outcome(read_file, directory, "sub/a.txt", 3)
    assert outcome_ is Outcome.FAILED and "more than the limit" in error
    assert outcome(write_file, directory, "big", b"1234")[0] is Outcome.FAILED
    assert outcome(read_file, directory, "missing", 3)[0] is Outcome.FAILED


def test_a_read_only_or_missing_directory(box, tmp_path) -> None:
    read_only = DirectoryTarget(path=str(box))
    assert outcome(write_file, read_only, "x", b"x")[0] is Outcome.REJECTED
    with pytest.raises(Stop) as stopped:
        read_file(DirectoryTarget(path=str(tmp_path / "nowhere")), "x", 10)
    assert stopped.value.delivery.outcome is Outcome.FAILED and not stopped.value.delivery.reached
