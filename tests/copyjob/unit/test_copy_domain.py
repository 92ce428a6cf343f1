"""The copy job's pure parts: folder names both ways, which messages a folder still lacks, and how a
job moves."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.copyjob.domain.folders import SourceFolder, decode_mutf7, encode_mutf7, our_name
from services.copyjob.domain.identity import Summary, missing
from services.copyjob.domain.jobs import Job, StepResult, cancelled, failed, with_plan, with_progress, with_step

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


def test_a_job_completes_when_its_last_folder_is_recorded_once():
    planned = with_plan(_job(), ["INBOX", "Sent"], ["INBOX", "Sent Items"], NOW)
    half = with_step(planned, "INBOX", StepResult(copied=3), NOW)
    again = with_step(half, "INBOX", StepResult(copied=99), NOW)

    assert half == again and half.running
    done = with_step(half, "Sent", StepResult(copied=2, already_there=1, too_big=("Sent#9 (2 bytes)",)), NOW)
    assert done.state == "completed" and done.totals() == {"copied": 5, "already_there": 1, "copied_bytes": 0,
                                                          "skipped_too_big": 1}
    assert with_plan(_job(), [], [], NOW).state == "completed"


def test_an_ended_job_does_not_move_again():
    planned = with_plan(_job(), ["INBOX"], ["INBOX"], NOW)
    ended = cancelled(planned, NOW)

    assert failed(ended, "internal", NOW) == ended
    assert with_step(ended, "INBOX", StepResult(copied=1), NOW) == ended
    assert with_progress(ended, "INBOX", 5, 10) == ended
    assert with_progress(planned, "INBOX", 5, 10).folders[0].copied == 5
