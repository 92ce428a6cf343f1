"""A source's flags reach our APPEND only as RFC 3501 flags: nothing it sends can change our command."""

import pytest

from services.copyjob.domain.flags import kept_flags


def test_system_flags_and_keywords_pass_recent_is_the_servers():
    """Ensure the five settable system flags and atom keywords are kept (each once), \\Recent is not set here."""
    assert kept_flags(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Label1", "Junk", "$Label1",
                       "\\Recent", "[x", "a|b~"]) == (
        ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Label1", "Junk", "[x", "a|b~"), 0)


@pytest.mark.parametrize("flag", ["{1+}", "{5}", 'a"b', "a(b", "a)b", "a]b", "a%", "a*", "\\Custom", "\\", "a\\b",
                                  "caf\u00e9", "a\x7fb", "a\x00", "x" * 201, ""])
def test_anything_but_an_atom_is_dropped_and_counted(flag):
    """Ensure a literal marker, a quote, a list or response special, an unknown system flag, a non-ASCII or
    control character, or an overlong keyword never reaches the APPEND line."""
    assert kept_flags(["\\Seen", flag]) == (("\\Seen",), 1)


def test_a_fetch_answer_with_invented_flags_gives_only_the_real_ones():
    """Ensure the summary of a source's FETCH answer keeps its real flags and counts the rest, whatever bytes
    the source sent (not UTF-8 either)."""
    from services.copyjob.adapters.imap import _Fetched, summary_of

    text = (b'1 FETCH (UID 7 RFC822.SIZE 10 FLAGS (\\Seen {1+} caf\xc3\xa9 \xff $Ok) '
            b'INTERNALDATE "01-Jan-2024 00:00:00 +0000" BODY[HEADER.FIELDS (MESSAGE-ID)] {0}')

    summary = summary_of(_Fetched(text, b""))

    assert (summary.flags, summary.flags_dropped) == (("\\Seen", "$Ok"), 3)
