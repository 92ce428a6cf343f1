"""The copy job's pure parts: folder names both ways, which messages a folder still lacks, and how a
job moves."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.copyjob.domain.checkpoints import WHOLE, Mailbox, Mark, View, next_chunk, up_to_date, view_from
from services.copyjob.domain.folders import SourceFolder, decode_mutf7, encode_mutf7, our_name, our_names
from services.copyjob.domain.identity import Summary, missing
from services.copyjob.domain.jobs import (
    Job,
    Planned,
    StepResult,
    cancelled,
    failed,
    with_folder_skipped,
    with_plan,
    with_progress,
    with_step,
)

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@given(st.text(min_size=1, max_size=30))
def test_modified_utf7_round_trips_any_name(name):
    encoded = encode_mutf7(name)
    assert encoded.isascii() and decode_mutf7(encoded) == name


def test_modified_utf7_matches_rfc_3501_examples():
    assert encode_mutf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mutf7("A&B") == "A&-B" and decode_mutf7("A&-B") == "A&B"


def test_names_map_onto_ours():
    dotted = SourceFolder("Projects.2024/Q1", ".", frozenset())
    assert our_name(dotted) == "Projects/2024\uff0fQ1"
    assert our_name(SourceFolder("Gesendete Objekte", "/", frozenset({"\\Sent"}))) == "Sent"
    assert our_name(SourceFolder("inbox", ".", frozenset())) == "INBOX"
    assert our_name(SourceFolder("&ZeVnLIqe-", None, frozenset())) == "日本語"
    assert not SourceFolder("Parent", ".", frozenset({"\\Noselect"})).selectable


def test_one_source_folder_per_use_becomes_ours_the_one_so_named_first():
    sent = frozenset({"\\Sent"})
    folders = [SourceFolder("Sent Messages", "/", sent), SourceFolder("Sent", "/", sent),
               SourceFolder("Old/Sent", "/", sent), SourceFolder("INBOX", "/", frozenset({"\\Junk"}))]

    assert our_names(folders) == ["Sent Messages", "Sent", "Old/Sent", "INBOX"]
    assert our_names(folders[::2]) == ["Sent", "Old/Sent"]


def _message(uid: int, date: str = "1", size: int = 10, digest: str = "d") -> Summary:
    return Summary(uid=uid, internaldate=date, size=size, fields_digest=digest)


def test_missing_keeps_counts_and_tells_apart_what_differs():
    source = [_message(1), _message(2), _message(3, size=11), _message(4, digest="other"), _message(5, date="2")]
    here = [_message(90)]

    assert [m.uid for m in missing(source, here)] == [2, 3, 4, 5]
    assert missing(source, [*here, _message(91), _message(92, size=11), _message(93, digest="other"),
                            _message(94, date="2")]) == []


def _job() -> Job:
    return Job(id="j", started_at=NOW, source_host="imap.example.com", source_port=993, source_security="imaps",
               notification_address="n@example.net")


def test_a_job_completes_when_its_last_chunk_is_recorded_once():
    planned = with_plan(_job(), [Planned("INBOX", "INBOX"), Planned("Sent", "Sent Items"), Planned("Old", "Old", 7)], NOW)
    first = with_step(planned, "INBOX", 0, StepResult(copied=3, already_there=1), NOW, more=True)
    half = with_step(first, "INBOX", 1, StepResult(copied=2), NOW)
    again = with_step(half, "INBOX", 1, StepResult(copied=99), NOW)

    assert half == again and half.running and with_step(half, "INBOX", 0, StepResult(copied=9), NOW) == half
    assert half.folders[0].copied == 5 and half.folders[0].total == 5
    done = with_step(half, "Sent Items", 0, StepResult(copied=2, already_there=1, too_big=("Sent#9 (2 bytes)",),
                                                       refused=("Sent#4 (empty)",)), NOW)
    assert done.state == "completed" and done.totals() == {"copied": 7, "already_there": 9, "copied_bytes": 0,
                                                          "skipped_too_big": 1, "skipped_refused": 1, "flags_dropped": 0,
                                                          "renamed_folders": 0}
    assert done.folders[1].total == 4  # copied, too big and refused: all it looked at


def test_a_source_of_empty_messages_has_a_hundred_named_and_the_rest_counted():
    planned = with_plan(_job(), [Planned("INBOX", "INBOX")], NOW)
    refused = tuple(f"INBOX#{n} (empty)" for n in range(150))
    first = with_step(planned, "INBOX", 0, StepResult(refused=refused[:90]), NOW, more=True)
    done = with_step(first, "INBOX", 1, StepResult(copied=1, refused=refused[90:]), NOW)

    assert done.folders[0].refused == refused[:100] and done.folders[0].refused_more == 50
    assert done.totals()["skipped_refused"] == 150 and done.folders[0].total == 151
    assert with_plan(_job(), [], NOW).state == "completed"
    assert with_plan(_job(), [Planned("INBOX", "INBOX", 3)], NOW).state == "completed"


def test_a_folder_left_out_ends_alone_and_the_job_lists_it():
    planned = with_plan(_job(), [Planned("INBOX", "INBOX"), Planned("x (1a2b3c4d)", "x\x01", renamed=True),
                                 Planned("a.b", "a.b", skipped="refused_here")], NOW)
    assert [f.state for f in planned.folders] == ["pending", "pending", "skipped"] and planned.running

    first = with_step(planned, "INBOX", 0, StepResult(copied=3), NOW, more=True)
    left_out = with_folder_skipped(first, "INBOX", 1, "refused_at_source", NOW)
    assert with_folder_skipped(left_out, "INBOX", 1, "refused_here", NOW) == left_out  # recorded once
    assert left_out.folders[0].copied == 3 and left_out.folders[0].skipped == "refused_at_source"
    done = with_step(left_out, "x\x01", 0, StepResult(copied=1), NOW)
    assert done.state == "completed" and done.skipped_folders() == ["INBOX", "a.b"]
    assert done.totals()["renamed_folders"] == 1 and done.totals()["copied"] == 4


def test_an_ended_job_does_not_move_again():
    planned = with_plan(_job(), [Planned("INBOX", "INBOX")], NOW)
    ended = cancelled(planned, NOW)

    assert failed(ended, "internal", NOW) == ended
    assert with_step(ended, "INBOX", 0, StepResult(copied=1), NOW) == ended
    assert with_progress(ended, "INBOX", 5, 10) == ended
    assert with_progress(planned, "INBOX", 5, 10).copied == 5


def _box(uidnext: int, messages: int, validity: int = 1) -> Mailbox:
    return Mailbox(uidvalidity=validity, uidnext=uidnext, messages=messages)


MARK = Mark(source_uidvalidity=1, source_uidnext=11, source_after=10, target_uidvalidity=1, target_uidnext=21,
            target_messages=15)


def test_a_mark_is_a_shortcut_only_while_nothing_was_removed_here():
    assert view_from(MARK, _box(11, 10), _box(21, 15)) == View(10, 21)
    assert view_from(MARK, _box(13, 12), _box(24, 18)) == View(10, 21)  # new on both sides: compare those
    assert view_from(MARK, _box(11, 10), _box(24, 17)) == WHOLE  # one removed here (and three added)
    assert view_from(MARK, _box(11, 10, validity=2), _box(21, 15)) == WHOLE
    assert view_from(MARK, _box(11, 10), _box(21, 15, validity=2)) == WHOLE
    assert view_from(None, _box(11, 10), _box(21, 15)) == WHOLE


def test_up_to_date_when_nothing_is_new_at_the_source():
    assert up_to_date(MARK, _box(11, 9), _box(25, 19))  # removed there, delivered here: nothing to copy
    assert not up_to_date(MARK, _box(12, 11), _box(21, 15))
    assert not up_to_date(MARK, _box(11, 10), _box(21, 14))
    assert not up_to_date(Mark(**{**MARK.__dict__, "source_after": 5}), _box(11, 10), _box(21, 15))  # a chunk short
    assert not up_to_date(None, _box(11, 10), _box(21, 15))


def test_a_chunk_takes_the_head_of_what_is_missing_and_covers_the_source_up_to_it():
    view = [_message(uid, size=100, digest=str(uid)) for uid in range(1, 11)]
    todo = [m for m in view if m.uid % 2 == 0]  # the odd ones are here already
    box = _box(15, 10)

    chunk = next_chunk(view, todo, box, max_messages=3, max_bytes=10_000, max_message_bytes=1_000)
    assert [m.uid for m in chunk.wanted] == [2, 4, 6] and chunk.more
    assert chunk.source_after == 6 and chunk.already_there == 3
    last = next_chunk(view[6:], todo[3:], box, max_messages=3, max_bytes=10_000, max_message_bytes=1_000)
    assert [m.uid for m in last.wanted] == [8, 10] and not last.more and last.source_after == 14 and last.already_there == 2
    by_bytes = next_chunk(view, todo, box, max_messages=99, max_bytes=250, max_message_bytes=1_000)
    assert [m.uid for m in by_bytes.wanted] == [2, 4] and by_bytes.more


def test_a_message_over_the_limit_is_listed_in_its_chunk_and_costs_no_bytes():
    view = [_message(1, size=5_000, digest="big"), _message(2, size=100, digest="small")]

    chunk = next_chunk(view, view, _box(3, 2), max_messages=5, max_bytes=200, max_message_bytes=1_000)
    assert [m.uid for m in chunk.too_big] == [1] and [m.uid for m in chunk.wanted] == [2] and not chunk.more


def test_the_flags_a_source_invented_are_counted_in_the_result():
    """Ensure each chunk's dropped flags add up in the folder and the job's totals (the user is told)."""
    planned = with_plan(_job(), [Planned("INBOX", "INBOX")], NOW)
    first = with_step(planned, "INBOX", 0, StepResult(copied=2, flags_dropped=3), NOW, more=True)
    done = with_step(first, "INBOX", 1, StepResult(copied=1, flags_dropped=1), NOW)

    assert done.state == "completed" and done.folders[0].flags_dropped == 4 and done.totals()["flags_dropped"] == 4
