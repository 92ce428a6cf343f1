"""The mails' words, from `services/notifier/templates.toml` (data: one place to edit, per
language); this only fills them in. Pure but for reading that file once."""

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[1] / "templates.toml"


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@cache
def _loaded() -> dict[str, dict[str, dict[str, str]]]:
    with TEMPLATES.open("rb") as file:
        return tomllib.load(file)


def render(kind: str, language: str, *, brand: str, address: str, faq_url: str, reason: str | None) -> Rendered:
    """`address` is shown as given (masked already where the mail wants it)."""
    words = _loaded()[language]
    reasons = words["reasons"]
    values = {"brand": brand, "address": address, "faq_url": faq_url,
              "reason": reasons.get(reason or "", reasons["internal"]) if reason else ""}
    template = words[kind]
    return Rendered(subject=template["subject"].format(**values), body=template["body"].format(**values))
