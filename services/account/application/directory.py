"""The account list's read side: each domain's directory, kept from the accounts' own changes by one
writer (the domain's turn), and ListAccounts answered from it in the same turn.

An account's change stages a RecordInDirectory in its own outbox, in the write that stores the change;
the relay sends it to the domain's shard, so the directory follows every account (eventually: a change
shows once its message is through, usually within milliseconds). A directory that does not exist yet
(a new domain, or one whose accounts were made before directories were kept) is built from the
accounts in the domain's turn, the first time a line or a list needs it: messages of accounts that
change meanwhile wait in the shard and are applied after it, and any older than what the build read
change nothing (versions). To build a domain's directory again, delete its index document.
"""

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from services.account.application.handlers import Deps, admin_refusal, rejected
from services.account.application.ports import Directory, ListedAccounts
from services.account.domain.account import RuleBroken
from services.account.domain.directory import (
    Change,
    Gone,
    Index,
    Line,
    Rewrite,
    address_after,
    applied,
    built,
    check_page_size,
    check_prefix,
    cursor_after,
    neighbour,
    rewritten,
    take,
)
from services.account.messages import RecordInDirectory
from shared.auth import InvalidToken
from shared.contracts.account import AccountFieldError, ListAccounts
from shared.contracts.base import Accepted, Rejected, Reply


def new_ids() -> Iterator[str]:
    while True:
        yield secrets.token_hex(6)


@dataclass(frozen=True)
class Directories:
    """The directory and where a build reads the accounts."""

    directory: Directory
    accounts: ListedAccounts

    async def index(self, domain: str) -> Index:
        return await self.directory.index(domain) or await self.build(domain)

    async def build(self, domain: str) -> Index:
        rewrite = built(await self.accounts.lines(domain), new_ids())
        await self.apply(domain, rewrite)
        assert rewrite.index is not None
        await self.directory.drop_unindexed(domain, rewrite.index)
        return rewrite.index

    async def apply(self, domain: str, rewrite: Rewrite) -> None:
        for chunk_id, lines in rewrite.chunks:
            await self.directory.write_chunk(domain, chunk_id, lines)
        if rewrite.index is not None:
            await self.directory.write_index(domain, rewrite.index)
        await self.directory.drop_chunks(domain, rewrite.dropped)

    async def lines_at(self, domain: str, index: Index, position: int) -> tuple[Line, ...]:
        return index.within(position, await self.directory.chunk(domain, index.chunk_id(position)))


async def record_in_directory(command: RecordInDirectory, directories: Directories) -> Accepted:
    """In the domain's turn: the account's line changed (or removed), the chunks re-cut if it grew or
    shrank past their bounds."""
    domain, change = command.domain.lower(), change_of(command)
    index = await directories.index(domain)
    position = index.position(change.address)
    before = await directories.lines_at(domain, index, position)
    lines = applied(before, change)
    if lines != before:
        await directories.apply(domain, await _rewrite(directories, domain, index, position, lines))
    return Accepted(command_id=command.message_id)


async def _rewrite(directories: Directories, domain: str, index: Index, position: int, lines: tuple[Line, ...]) -> Rewrite:
    other = neighbour(index, position, len(lines))
    if other is None:
        return rewritten(index, position, lines, new_ids())
    others = await directories.lines_at(domain, index, other)
    joined = (*lines, *others) if other > position else (*others, *lines)
    return rewritten(index, min(position, other), joined, new_ids(), span=2)


def change_of(command: RecordInDirectory) -> Change:
    address = command.address.lower()
    if command.gone:
        return Gone(address=address, version=command.version)
    return Line(address=address, plan=command.plan, quota_mb=command.quota_mb, comment=command.comment,
                created_at=command.created_at, state=command.state, version=command.version)


async def list_accounts(command: ListAccounts, deps: Deps, *, directories: Directories) -> Reply:
    """A page of the domain's accounts, after the cursor, starting with the prefix."""
    domain = await _administered(command, deps)
    if isinstance(domain, Rejected):
        return domain
    if errors := _broken_rules(partial(check_prefix, command.prefix, domain), partial(check_page_size, command.limit),
                               partial(address_after, command.after, domain)):
        message = errors[0].message if len(errors) == 1 else "the list asks for several things it cannot give"
        return rejected(command, "validation_failed", message, *errors)
    prefix, after = check_prefix(command.prefix, domain), address_after(command.after, domain)
    index = await directories.index(domain)
    shown: list[Line] = []
    position, ended = index.position(max(after, prefix)), False
    while position < len(index.chunks) and not ended and len(shown) <= command.limit:
        taken, ended = take(await directories.lines_at(domain, index, position), after=after, prefix=prefix,
                            room=command.limit + 1 - len(shown))
        shown += taken
        position += 1
    page = shown[:command.limit]
    return Accepted(command_id=command.message_id, result={
        "accounts": [line.shown() for line in page],
        "next": cursor_after(domain, page[-1].address) if len(shown) > command.limit else None})


async def _administered(command: ListAccounts, deps: Deps) -> str | Rejected:
    """The domain, when the sender administers it now; else the refusal."""
    try:
        actor = deps.verifier.verify(command.actor_token)
    except InvalidToken:
        return rejected(command, "unauthenticated", "the session token is missing, invalid or expired")
    domain = command.domain.strip().lower()
    if not actor.is_admin or domain not in actor.domains:
        return rejected(command, "forbidden", f"{actor.subject} may not list the accounts of {domain}")
    return await admin_refusal(command, actor, domain, deps) or domain


def _broken_rules(*checks: Callable[[], object]) -> list[AccountFieldError]:
    """Every rule the request breaks, so one reply names them all."""
    errors = []
    for check in checks:
        try:
            check()
        except RuleBroken as error:
            errors.append(AccountFieldError(field=error.field, code=error.code, message=error.message, params=error.params))
    return errors
