"""What the autoreply page's script needs to count as the rules service counts (SPEC's East Asian Width
rule, from the contract's classes) and to flag what it refuses. A hint only: the service judges."""

import functools
import sys
import unicodedata

from shared.contracts.rules import NOT_ROUND_TRIPPING, WIDE


@functools.cache
def wide_ranges() -> str:
    """The code points counted full-width, as "start-end" hex ranges separated by spaces."""
    ranges, start = [], None
    for code_point in range(sys.maxunicode + 2):
        wide = code_point <= sys.maxunicode and unicodedata.east_asian_width(chr(code_point)) in WIDE
        if wide and start is None:
            start = code_point
        elif not wide and start is not None:
            ranges.append(f"{start:x}-{code_point - 1:x}")
            start = None
    return " ".join(ranges)


REFUSED_CHARACTERS = "".join(NOT_ROUND_TRIPPING)
"""refused on the plans without the AUTOREPLY_ANY_CHARACTER capability"""
