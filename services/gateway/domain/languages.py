"""Which language a page speaks: the visitor's choice, else the browser's, else Japanese."""

from typing import Literal

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")
DEFAULT: Language = "ja"


def chosen(cookie: str | None, accept_language: str | None) -> Language:
    if cookie in LANGUAGES:
        return cookie
    return from_accept_language(accept_language or "")


def from_accept_language(header: str) -> Language:
    """The first of our languages by the header's q-values (ties keep the header's order)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, position, tag.strip().lower().partition("-")[0]))
    for negative_quality, _, base in sorted(ranked):
        if negative_quality < 0 and base in LANGUAGES:
            return base
    return DEFAULT
