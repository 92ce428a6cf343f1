"""Folder names between two IMAP servers: modified UTF-7 (RFC 3501 5.1.3) both ways, the source's
hierarchy separator turned into ours (`/`), and special-use folders mapped onto ours. Pure."""

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from hashlib import sha256

OUR_SEPARATOR = "/"
SPECIAL_USE = {"\\Sent": "Sent", "\\Drafts": "Drafts", "\\Trash": "Trash", "\\Junk": "Junk", "\\Archive": "Archive"}
"""a source folder flagged so is copied into our folder of that use"""
_SHIFTED = re.compile(r"&([^-]*)-")
MAX_NAME_BYTES = 200
"""a name's length here as stored (modified UTF-7, each `.` escaped as `\\2e` by listescape): Maildir++
keeps a folder's whole path in one directory name, at most 255 bytes"""


def decode_mutf7(name: str) -> str:
    """Unicode from modified UTF-7; ValueError when the name is none (a stray `&`, bad base64 or
    UTF-16, a character outside printable ASCII)."""
    def shifted(match: re.Match[str]) -> str:
        if not match[1]:
            return "&"
        data = match[1].replace(",", "/")
        try:
            return base64.b64decode(data + "=" * (-len(data) % 4), validate=True).decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ValueError(f"not modified UTF-7: {error}") from None

    if not name.isascii() or not name.isprintable():
        raise ValueError("not modified UTF-7: a character outside printable ASCII")
    decoded = _SHIFTED.sub(shifted, name)
    if "&" in _SHIFTED.sub("", name):
        raise ValueError("not modified UTF-7: an unterminated `&`")
    return decoded


def decode_mutf7_or_raw(name: str) -> str:
    """For showing a source's name: Unicode where it is modified UTF-7, else as it came."""
    try:
        return decode_mutf7(name)
    except ValueError:
        return name


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
    return _apart(folders, [our_name(f, special=chosen.get(our_name(f)) is f) for f in folders])


def _apart(folders: list[SourceFolder], names: list[str]) -> list[str]:
    """Two source folders whose own names would meet here (`a/b` on a source that separates with `.`,
    written `a／b`, beside a folder named `a／b` itself): the one whose name needed no such change keeps
    it, the other gets its safe name, on every run alike."""
    taken: set[str] = set()
    apart = list(names)
    own = [i for i, folder in enumerate(folders) if names[i] == own_name(folder) and names[i] not in ("INBOX", *SPECIAL_USE.values())]
    for i in sorted(own, key=lambda i: (_slash_inside(folders[i]), folders[i].name)):
        if apart[i] in taken:
            apart[i] = _unused(_safe_name(folders[i], _natural_name(folders[i])), taken)
        taken.add(apart[i])
    return apart


def _unused(name: str, taken: set[str]) -> str:
    """`name`, or, when a source folder is really called so, `name 2`, `name 3`… (cut to stay storable)."""
    candidate, n = name, 1
    while candidate in taken or not storable(candidate):
        n += 1
        suffix = f" {n}"
        head = name
        while head and not storable(head + suffix):
            head = head[:-1]
        candidate = head + suffix
    return candidate


def _slash_inside(folder: SourceFolder) -> bool:
    """A level of the name holds our separator (written as a full-width solidus here)."""
    natural = _natural_name(folder)
    return natural is not None and folder.separator not in (None, OUR_SEPARATOR) and OUR_SEPARATOR in decode_mutf7(folder.name)


def our_name(folder: SourceFolder, *, special: bool = True) -> str:
    """Where a source folder goes here, in Unicode: INBOX stays INBOX, a special-use folder becomes
    ours (unless not `special`), any other keeps its own name."""
    if folder.name.upper() == "INBOX":
        return "INBOX"
    if special and (use := folder.special_use):
        return SPECIAL_USE[use]
    return own_name(folder)


def own_name(folder: SourceFolder) -> str:
    """The folder's own name and hierarchy here, or, when that has no valid form here, a safe one
    (`renamed`)."""
    natural = _natural_name(folder)
    return natural if natural is not None and storable(natural) else _safe_name(folder, natural)


def renamed(folder: SourceFolder, name: str) -> bool:
    """Whether the folder goes here under another name than its own (special uses aside)."""
    return name != "INBOX" and name not in SPECIAL_USE.values() and name != _natural_name(folder)


def storable(name: str) -> bool:
    """A name our Dovecot takes: no empty level, no control character, short enough."""
    levels = name.split(OUR_SEPARATOR)
    return (all(levels) and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name)
            and len(encode_mutf7(name)) + 2 * name.count(".") <= MAX_NAME_BYTES)


def _natural_name(folder: SourceFolder) -> str | None:
    """The name and hierarchy, with `/` inside a level (possible when the source separates with `.`)
    written as a full-width solidus so that it stays one level; None when it is not modified UTF-7."""
    try:
        decoded = decode_mutf7(folder.name)
    except ValueError:
        return None
    if encode_mutf7(decoded) != folder.name:
        return None  # spelled otherwise than modified UTF-7 spells it: another folder may have this name
    levels = decoded.split(folder.separator) if folder.separator else [decoded]
    return OUR_SEPARATOR.join(level.replace(OUR_SEPARATOR, "\uff0f") for level in levels)


def _safe_name(folder: SourceFolder, natural: str | None) -> str:
    """What can be kept of the name (control characters and empty levels as `_`, cut to fit), marked
    with a digest of the source's spelling: the same on every run, and two source folders never meet."""
    readable = natural if natural is not None else "".join(ch if ch.isprintable() else "_" for ch in folder.name)
    levels = ["".join("_" if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in level) or "_"
              for level in readable.split(OUR_SEPARATOR)]
    mark = f" ({sha256(folder.name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]})"
    name = OUR_SEPARATOR.join(levels)[:MAX_NAME_BYTES]
    while name and not storable(name + mark):
        name = name[:-1]
    return name.rstrip(OUR_SEPARATOR) + mark
