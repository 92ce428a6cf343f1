"""The purge's pure parts: what goes and what stays, in which order folders go, UID sets, and how a
purge job moves to its end."""

from datetime import UTC, datetime

from services.copyjob.domain.checkpoints import Mailbox
from services.copyjob.domain.jobs import (
    Job,
    StepResult,
    removing_folders,
    with_folders_removed,
    with_purge_plan,
    with_step,
)
from services.copyjob.domain.purge import Listed, purge_plan, removal_order, uid_sets

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_inbox_and_special_use_folders_stay_the_users_own_go_and_only_what_was_there():
    plan = purge_plan([Listed("INBOX", frozenset(), Mailbox(7, 120, 100)),
                       Listed("Sent", frozenset({"\\Sent"}), Mailbox(8, 5, 4)),
                       Listed("Work", frozenset({"\\HasChildren"}), Mailbox(9, 1, 0)),
                       Listed("Parent", frozenset({"\\Noselect"}), None)])

    assert [(f.name, f.below_uid, f.remove) for f in plan] == [("INBOX", 120, False), ("Sent", 5, False),
                                                               ("Work", 1, True), ("Parent", 0, True)]


def test_children_go_before_their_parents():
    assert removal_order(["A", "A/B/C", "B", "A/B"]) == ["A/B/C", "A/B", "A", "B"]


def test_uid_sets_are_short_ranges_of_at_most_a_batch():
    assert list(uid_sets([9, 1, 2, 3, 5, 6, 12], 10)) == [("1:3,5:6,9,12", 7)]
    assert list(uid_sets(list(range(1, 6)), 2)) == [("1:2", 2), ("3:4", 2), ("5", 1)]
    assert list(uid_sets([], 5)) == []


def test_a_purge_completes_after_its_folders_are_emptied_and_the_users_removed():
    job = Job(id="p", started_at=NOW, notification_address="a@example.jp", kind="purge")
    plan = purge_plan([Listed("INBOX", frozenset(), Mailbox(7, 3, 2)), Listed("Trash", frozenset({"\\Trash"}), Mailbox(8, 1, 0)),
                       Listed("Work", frozenset(), Mailbox(9, 4, 3))])
    planned = with_purge_plan(job, plan, NOW)

    assert [f.state for f in planned.folders] == ["pending", "done", "pending"] and not removing_folders(planned)
    emptied = with_step(with_step(planned, "INBOX", 0, StepResult(copied=2), NOW), "Work", 0, StepResult(copied=3), NOW)
    assert emptied.running and removing_folders(emptied)
    done = with_folders_removed(emptied, ["Work"], NOW)
    assert done.state == "completed" and done.totals() == {"removed": 5, "folders_removed": 1}
    assert with_folders_removed(done, ["Other"], NOW) == done
