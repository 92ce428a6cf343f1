"""Folder names between two IMAP servers: modified UTF-7 (RFC 3501 5.1.3) both ways, the source's
hierarchy separator turned into ours (`/`), and special-use folders mapped onto ours. Pure."""

import base64
import re
from dataclasses import dataclass

OUR_SEPARATOR = "/"
SPECIAL_USE = {"\\Sent": "Sent", "\\Drafts": "Drafts", "\\Trash": "Trash", "\\Junk": "Junk", "\\Archive": "Archive"}
"""a source folder flagged so is copied into our folder of that use"""
_SHIFTED = re.compile(r"&([^-]*)-")


def decode_mutf7(name: str) -> str:
    def shifted(match: re.Match[str]) -> str:
        if not match[1]:
            return "&"
        data = match[1].replace(",", "/")
        return base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-16-be")

    return _SHIFTED.sub(shifted, name)


def encode_mutf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{data}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


@dataclass(frozen=True)
class SourceFolder:
    name: str
    """as the source server spells it (modified UTF-7), to SELECT it there"""
    separator: str | None
    attributes: frozenset[str]

    @property
    def selectable(self) -> bool:
        return not ({"\\noselect", "\\nonexistent"} & {a.lower() for a in self.attributes})

    @property
    def special_use(self) -> str | None:
        return next((a for a in self.attributes if a in SPECIAL_USE), None)


def our_names(folders: list[SourceFolder]) -> list[str]:
    """Where each source folder goes here (index for index). One source folder per use becomes ours
    of that use: the one already named so, else the first; a second `\\Sent` keeps its own name
    rather than pour into the same folder."""
    chosen: dict[str, SourceFolder] = {}
    candidates = [f for f in folders if f.special_use and f.name.upper() != "INBOX"]
    for folder in sorted(candidates, key=lambda f: our_name(f) != own_name(f)):
        chosen.setdefault(our_name(folder), folder)
    return [our_name(f, special=chosen.get(our_name(f)) is f) for f in folders]


def our_name(folder: SourceFolder, *, special: bool = True) -> str:
    """Where a source folder goes here, in Unicode: INBOX stays INBOX, a special-use folder becomes
    ours (unless not `special`), any other keeps its own name."""
    if folder.name.upper() == "INBOX":
        return "INBOX"
    if special and (use := folder.special_use):
        return SPECIAL_USE[use]
    return own_name(folder)


def own_name(folder: SourceFolder) -> str:
    """The name and hierarchy, with `/` inside a level (possible when the source separates with `.`)
    written as a full-width solidus so that it stays one level."""
    levels = decode_mutf7(folder.name).split(folder.separator) if folder.separator else [decode_mutf7(folder.name)]
    return OUR_SEPARATOR.join(level.replace(OUR_SEPARATOR, "\uff0f") for level in levels)
