"""mailctl: try the system from a terminal; publishes the same commands a gateway would."""

import asyncio
import functools
import json
import os
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import typer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from rich.console import Console
from rich.table import Table

from shared.broker_access import Broker
from shared.client import CommandClient
from shared.contracts.account import (
    SERVICE,
    ChangeComment,
    ChangePassword,
    ChangeQuota,
    CreateAccount,
    DeleteAccount,
    EndSession,
    GetAccount,
    ListAccounts,
    Login,
    PlanName,
    SignOutEverywhere,
)
from shared.contracts.base import Accepted, AnonymousCommand, Command, Rejected
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import CancelJob, GetJob, GetRetention, PurgeMailbox, StartCopy
from shared.contracts.notifier import SERVICE as NOTIFIER
from shared.contracts.notifier import GetNotifications
from shared.contracts.rules import SERVICE as RULES
from shared.contracts.rules import (
    AddForwarding,
    DeleteAutoreply,
    GetRules,
    RemoveForwarding,
    SetAutoreply,
    SetReceive,
    SetSpamSort,
    SetSpamTag,
)
from shared.settings import TelemetrySettings
from shared.telemetry import make_tracer_provider, outcome, span

app = typer.Typer(help="Mail Self-Service from the command line.", no_args_is_help=True)
account_app = typer.Typer(help="Admin: list, create, delete and size accounts.", no_args_is_help=True)
password_app = typer.Typer(help="Passwords.", no_args_is_help=True)
rules_app = typer.Typer(help="Spam handling, forwarding, autoreply and receive on/off (your own, or in your domains "
                             "as admin).", no_args_is_help=True)
autoreply_app = typer.Typer(help="The automatic reply.", no_args_is_help=True)
forward_app = typer.Typer(help="Forwarding: all mail, or mail whose From or Subject contains a keyword.",
                          no_args_is_help=True)
copy_app = typer.Typer(help="Copy your mail in from another IMAP server (business-standard, kwc).", no_args_is_help=True)
app.add_typer(copy_app, name="copy")
mail_app = typer.Typer(help="Your mailbox itself.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
rules_app.add_typer(autoreply_app, name="autoreply")
rules_app.add_typer(forward_app, name="forward")
app.add_typer(account_app, name="account")
app.add_typer(password_app, name="password")
app.add_typer(rules_app, name="rules")
console = Console()

SESSION_FILE = Path(os.environ.get("MAILCTL_SESSION", Path.home() / ".config" / "mailctl" / "session.json"))


JSON_OUTPUT = {"on": False}


@app.callback()
def options(as_json: Annotated[bool, typer.Option(
        "--json", help="print each reply as one JSON object on stdout, a stable shape for scripts: "
                       '{"status": "accepted", "result": {...}} or {"status": "rejected", "code", "message", "errors"}; '
                       "jobs are then not followed (ask `copy status`)")] = False) -> None:
    JSON_OUTPUT["on"] = as_json


def emitted(result: dict[str, Any]) -> bool:
    """With --json: the command's whole output is its reply's result, printed here (True)."""
    if JSON_OUTPUT["on"]:
        print(json.dumps({"status": "accepted", "result": result}, ensure_ascii=False, sort_keys=True))
    return JSON_OUTPUT["on"]


def amqp_url() -> str:
    """AMQP_URL, or mailctl's own broker user on the local stack (it may only send commands)."""
    return os.environ.get("AMQP_URL") or Broker.from_env().url("mailctl")


async def _request(service: str, command: Command | AnonymousCommand) -> Accepted | Rejected:
    """Under a span of its own (OTEL_EXPORTER as the services'): the root of the command's trace."""
    provider = _tracer_provider()
    try:
        with span(f"mailctl {type(command).__name__}", kind=SpanKind.CLIENT, attributes={"mailss.service": service}):
            client = await CommandClient.connect(amqp_url())
            try:
                reply = await client.request(service, command)
            finally:
                await client.close()
            outcome(reply.code if isinstance(reply, Rejected) else "accepted")
            return reply
    finally:
        if provider:
            provider.force_flush()


@functools.cache
def _tracer_provider() -> TracerProvider | None:
    return make_tracer_provider("mailctl", TelemetrySettings())


def send(command: Command | AnonymousCommand, service: str = SERVICE) -> Accepted:
    try:
        reply = asyncio.run(_request(service, command))
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
        fail("unreachable", f"no answer from the {service} service: {type(error).__name__}")
    if isinstance(reply, Rejected):
        show_rejection(reply)
        raise typer.Exit(1)
    return reply


def fail(code: str, message: str) -> typing.NoReturn:
    """Anything but a reply (no broker, no session, a question --json cannot ask): said, exit 2."""
    if JSON_OUTPUT["on"]:
        print(json.dumps({"status": "rejected", "code": code, "message": message, "errors": []}))
    else:
        console.print(f"[red]{message}[/]")
    raise typer.Exit(2)


def confirmed(question: str, yes: bool) -> bool:
    """--yes, or the person's answer; with --json there is nobody to ask."""
    if yes:
        return True
    if JSON_OUTPUT["on"]:
        fail("confirmation_needed", f"{question} (give --yes with --json)")
    return typer.confirm(question, default=False, err=True)


def show_rejection(reply: Rejected) -> None:
    if JSON_OUTPUT["on"]:
        print(json.dumps({"status": "rejected", "code": reply.code, "message": reply.message,
                          "errors": [error.model_dump() for error in reply.errors]}, ensure_ascii=False, sort_keys=True))
        return
    console.print(f"[bold red]rejected[/] [red]{reply.code}[/]: {reply.message}")
    if reply.errors:
        table = Table("field", "rule", "message", header_style="bold")
        for error in reply.errors:
            table.add_row(error.field, error.code, error.message)
        console.print(table)


def stored_session() -> dict[str, Any] | None:
    try:
        current: dict[str, Any] = json.loads(SESSION_FILE.read_text())
        current["token"], current["subject"]
        return current
    except (OSError, ValueError, KeyError, TypeError):
        return None


def session() -> dict[str, Any]:
    if (current := stored_session()) is None:
        fail("not_logged_in", "not logged in: run mailctl login first")
    return current


def token() -> str:
    return str(session()["token"])


def save_session(result: dict[str, Any]) -> None:
    SESSION_FILE.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    SESSION_FILE.touch(mode=0o600, exist_ok=True)
    SESSION_FILE.chmod(0o600)
    SESSION_FILE.write_text(json.dumps(result))


def ask_password(prompt: str) -> str:
    """Prompts go to stderr: stdout is the command's output (one JSON object with --json)."""
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))


@app.command()
def login(login: str, password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin (scripts), not a prompt")] = False,
          ) -> None:
    """Sign in with a mail address (user) or an admin login; keeps the session token. The password is
    asked for (or read from stdin), never taken from the command line, where `ps` would show it."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else str(typer.prompt("Password", hide_input=True, err=True))
    result = send(Login(login=login, password=password)).result
    save_session(result)
    if emitted({key: result[key] for key in ("subject", "role", "domains", "expires_at")}):  # never the token
        return
    console.print(f"[green]signed in[/] as [bold]{result['subject']}[/] ({result['role']}), until {result['expires_at']}")


LOGGED_OUT = {
    "ended": "signed out: this session is ended on every service",
    "already_ended": "signed out (the session had already ended)",
    "expired": "signed out (the session had already expired)",
    "ended_everywhere": "signed out everywhere: every session of {login} until now is ended, on every device",
}


@app.command()
def logout(everywhere: Annotated[bool, typer.Option(
        "--everywhere", help="end every session of your login until now, on every device, not only this one")] = False,
           ) -> None:
    """End this session on every service (or, with --everywhere, all of yours) and forget its token. The
    token is forgotten here even when the services cannot be told; it then stays valid until it expires."""
    if (current := stored_session()) is None:
        if not emitted({"outcome": "no_session"}):
            console.print("signed out (there was no session)")
        return
    command = (SignOutEverywhere(actor_token=current["token"], login=current["subject"]) if everywhere
               else EndSession(actor_token=current["token"]))
    try:
        reply = asyncio.run(_request(SERVICE, command))
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
        SESSION_FILE.unlink(missing_ok=True)
        fail("unreachable", f"no answer from the account service ({type(error).__name__}): the session token is "
                            f"forgotten here, but the session stays valid until {current.get('expires_at', 'it expires')}")
    SESSION_FILE.unlink(missing_ok=True)
    if isinstance(reply, Rejected):
        show_rejection(reply)
        raise typer.Exit(1)
    if not emitted(reply.result):
        console.print(LOGGED_OUT[reply.result["outcome"]].format(login=reply.result["login"]))


@app.command()
def whoami() -> None:
    """Show the current session."""
    current = session()
    if not emitted({key: current[key] for key in ("subject", "role", "domains", "expires_at")}):
        console.print(f"{current['subject']} ({current['role']}) domains={current['domains']} until {current['expires_at']}")


def accepted(reply: Accepted, what: str) -> None:
    if not emitted(reply.result or {}):
        console.print(f"[green]accepted[/]: {what}")


@account_app.command("create")
def account_create(
    address: str,
    plan: Annotated[PlanName, typer.Option(help="business-standard, kwc or sv-basic")],
    quota_mb: Annotated[int | None, typer.Option("--quota", help="MB; not on sv-basic")] = None,
    comment: str = "",
) -> None:
    """Create a mail account (admin)."""
    password = ask_password("Initial password")
    accepted(send(CreateAccount(actor_token=token(), address=address, plan=plan, initial_password=password,
                                quota_mb=quota_mb, comment=comment)), f"{address} created")


@account_app.command("delete")
def account_delete(address: str, yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete a mail account (admin)."""
    if not confirmed(f"Delete {address}?", yes):
        raise typer.Exit(1)
    accepted(send(DeleteAccount(actor_token=token(), address=address)), f"{address} deleted")


@account_app.command("quota")
def account_quota(address: str, quota_mb: int) -> None:
    """Change an account's quota in MB (admin; not on sv-basic)."""
    accepted(send(ChangeQuota(actor_token=token(), address=address, quota_mb=quota_mb)), f"quota of {address} is {quota_mb} MB")


@account_app.command("comment")
def account_comment(address: str, comment: str) -> None:
    """Change an account's comment (admin)."""
    accepted(send(ChangeComment(actor_token=token(), address=address, comment=comment)), f"comment of {address} changed")


@account_app.command("show")
def account_show(address: Annotated[str | None, typer.Argument(help="default: your own")] = None) -> None:
    """Show an account: plan, quota, what its mailbox holds, comment, creation time (yours, or any in your domains
    as admin)."""
    result = send(GetAccount(actor_token=token(), address=(address or session()["subject"]).lower())).result
    if emitted(result):
        return
    usage, quota = result["usage"], result["quota_mb"]
    table = Table("", "", show_header=False, title=f"{result['address']} ({result['plan']})")
    table.add_row("quota", "no limit" if quota is None else f"{quota:,} MB")
    table.add_row("in the mailbox", "not known" if usage is None else
                  f"{usage['bytes'] / 1024 / 1024:,.1f} MB in {usage['messages']:,} messages"
                  + ("" if quota is None else f" ({usage['bytes'] / (quota * 1024 * 1024):.0%} of the quota)"))
    table.add_row("comment", result["comment"] or "-")
    table.add_row("created", result.get("created_at") or "-")
    console.print(table)


@account_app.command("list")
def account_list(domain: str,
                 prefix: Annotated[str, typer.Option(help="only addresses starting with this (any case)")] = "",
                 limit: Annotated[int, typer.Option(help="accounts on a page (1..100)")] = 50,
                 after: Annotated[str | None, typer.Option(help="the page after this one: the cursor the page before "
                                                                 "printed")] = None) -> None:
    """List the accounts of one of your domains (admin), sorted by address, a page at a time."""
    result = send(ListAccounts(actor_token=token(), domain=domain, prefix=prefix, limit=limit, after=after)).result
    if emitted(result):
        return
    table = Table("address", "plan", "quota", "comment", "created", "state", header_style="bold", title=domain.lower())
    for account in result["accounts"]:
        quota = account["quota_mb"]
        table.add_row(account["address"], account["plan"] or "-", "no limit" if quota is None else f"{quota:,} MB",
                      account["comment"] or "-", (account["created_at"] or "-")[:19].replace("T", " "),
                      "[yellow]deleting[/]" if account["state"] == "deleting" else account["state"])
    console.print(table)
    if result["next"]:
        console.print(f"more: mailctl account list {domain} --after {result['next']}"
                      + (f" --prefix {prefix}" if prefix else "") + (f" --limit {limit}" if limit != 50 else ""))


@password_app.command("change")
def password_change(address: Annotated[str | None, typer.Argument(help="default: your own")] = None) -> None:
    """Change a password (your own, or any in your domains as admin)."""
    current = session()
    target = (address or current["subject"]).lower()
    own = current["role"] == "user"
    current_password = str(typer.prompt("Current password", hide_input=True, err=True)) if own else None
    password = ask_password("New password")
    reply = send(ChangePassword(actor_token=current["token"], address=target, new_password=password,
                                current_password=current_password))
    ended = target == current["subject"]  # the change ends every session of the address, this one too
    if ended:
        SESSION_FILE.unlink(missing_ok=True)
    if emitted({**(reply.result or {}), "session_ended": ended}):
        return
    console.print(f"[green]accepted[/]: password of {target} changed")
    if ended:
        console.print("your session ended with the old password: run [bold]mailctl login[/] again")


Address = Annotated[str | None, typer.Option("--address", "-a", help="default: your own")]
Switch = Annotated[bool, typer.Argument(parser=lambda v: {"on": True, "off": False}[v.lower()], metavar="on|off")]


def target(address: str | None) -> str:
    return (address or session()["subject"]).lower()


@rules_app.command("show")
def rules_show(address: Address = None) -> None:
    """Show the rules and whether the mail server runs them yet."""
    result = send(GetRules(actor_token=token(), address=target(address)), RULES).result
    if emitted(result):
        return
    table = Table("rule", "value", header_style="bold", title=f"{result['address']} ({result['plan']})")
    reply = result["autoreply"]
    for name, value in (("spam subject tag", result["spam_tag"]), ("spam auto-sort", result["spam_sort"]),
                        ("receive", result["receive"]), ("autoreply", reply["text"] if reply else "off"),
                        ("  with the original", reply["include_original"] if reply else "-")):
        table.add_row(name, "on" if value is True else "off" if value is False else str(value))
    for entry in result["forwards"]:
        condition = "all mail" if entry["condition"] == "all" else f"{entry['condition']} contains {entry['match']!r}"
        table.add_row(f"forward #{entry['id']}", f"{condition} -> {', '.join(entry['destinations'])}")
    server = result["mail_server"]
    table.add_row("mail server", f"{server['state']} (version {server['deployed_version']} of {result['version']})"
                  + (f": {server['last_failure']}" if server["last_failure"] else ""))
    sent = result["outbound"]
    table.add_row("sent out this hour", f"{sent['sent_last_hour']} of {sent['per_hour']} (forwards, autoreplies)"
                  + (f"; {sent['held_last_hour']} held in the mailbox, last at {sent['last_held_at']}"
                     if sent["held_last_hour"] else ""))
    console.print(table)


@rules_app.command("spam-tag")
def rules_spam_tag(on: Switch, address: Address = None) -> None:
    """Prefix "[SPAM] " to the subject of mail flagged as spam."""
    accepted(send(SetSpamTag(actor_token=token(), address=target(address), on=on), RULES), f"spam tag {(on and 'on') or 'off'}")


@rules_app.command("spam-sort")
def rules_spam_sort(on: Switch, address: Address = None) -> None:
    """File mail flagged as spam into Junk (not on sv-basic)."""
    accepted(send(SetSpamSort(actor_token=token(), address=target(address), on=on), RULES), f"spam sort {(on and 'on') or 'off'}")


@rules_app.command("receive")
def rules_receive(on: Switch, address: Address = None,
                  accept_loss: Annotated[bool, typer.Option(help="receive off: new mail is kept nowhere")] = False) -> None:
    """Keep new mail in the mailbox (on), or not (off: send-only or relay addresses)."""
    accepted(send(SetReceive(actor_token=token(), address=target(address), on=on, accept_loss=accept_loss), RULES),
             f"receive {(on and 'on') or 'off'}")


@forward_app.command("add")
def forward_add(condition: Annotated[str, typer.Argument(metavar="all|from|subject")],
                destinations: Annotated[list[str], typer.Argument(help="one or more addresses (300 per account)")],
                match: Annotated[str, typer.Option(help="from/subject: the text to look for (taken literally)")] = "",
                address: Address = None) -> None:
    """Forward all mail, or mail whose From address or Subject contains --match (ASCII letters in either case)."""
    if condition not in ("all", "from", "subject"):
        raise typer.BadParameter("all, from or subject", param_hint="CONDITION")
    reply = send(AddForwarding(actor_token=token(), address=target(address), condition=condition,
                               match=match, destinations=destinations), RULES)
    accepted(reply, f"forwarding added (version {reply.result['version']}); see [bold]mailctl rules show[/]")


@forward_app.command("remove")
def forward_remove(entry_id: Annotated[str, typer.Argument(help="the entry's id, as `mailctl rules show` lists it")],
                   address: Address = None,
                   accept_loss: Annotated[bool, typer.Option(help="the last forward of all mail while receive is off: "
                                                                  "new mail is kept nowhere")] = False) -> None:
    """Remove one forwarding entry."""
    accepted(send(RemoveForwarding(actor_token=token(), address=target(address), entry_id=entry_id,
                                   accept_loss=accept_loss), RULES), f"forwarding #{entry_id} removed")


@autoreply_app.command("set")
def autoreply_set(address: Address = None,
                  include_original: Annotated[bool, typer.Option(help="sv-basic: quote the sender's text")] = False,
                  file: Annotated[Path | None, typer.Option(help="read the text from a file (default: stdin)")] = None,
                  ) -> None:
    """Set the reply text (at most 600 width units: full-width characters count 2)."""
    text = file.read_text() if file else sys.stdin.read()
    accepted(send(SetAutoreply(actor_token=token(), address=target(address), text=text.rstrip("\n"),
                               include_original=include_original), RULES), "autoreply set")


@autoreply_app.command("delete")
def autoreply_delete(address: Address = None) -> None:
    """Stop replying automatically."""
    accepted(send(DeleteAutoreply(actor_token=token(), address=target(address)), RULES), "autoreply deleted")


@copy_app.command("start")
def copy_start(host: Annotated[str, typer.Argument(help="the other server's IMAP host name or address")],
               notify: Annotated[str, typer.Option(help="where the notification mail goes")],
               port: Annotated[int, typer.Option(help="993 for IMAPS, 143 for STARTTLS")] = 993,
               security: Annotated[str, typer.Option(help="imaps, starttls or plain")] = "imaps",
               follow: Annotated[bool, typer.Option(help="show the progress until the job ends")] = True) -> None:
    """Copy every folder of your address on HOST into your mailbox (asks both passwords)."""
    current = session()
    own = str(typer.prompt("Your current password", hide_input=True, err=True))
    source = str(typer.prompt(f"Your password on {host}", hide_input=True, err=True))
    reply = send(StartCopy(actor_token=current["token"], address=current["subject"], current_password=own,
                           source_host=host, source_port=port, source_security=security,
                           source_password=source, notification_address=notify), COPYJOB)
    if emitted(reply.result or {}):
        return
    console.print(f"[green]accepted[/]: job {reply.result['job_id']}")
    if follow:
        _follow(current["token"], current["subject"], reply.result["job_id"])


@copy_app.command("status")
def copy_status(job_id: Annotated[str | None, typer.Argument(help="default: the current or last job")] = None,
                address: Address = None,
                follow: Annotated[bool, typer.Option(help="show the progress until the job ends")] = False) -> None:
    """Show a copy or purge job: state, folders, counts."""
    job = send(GetJob(actor_token=token(), address=target(address), job_id=job_id), COPYJOB).result
    if emitted(job):
        return
    if follow and job["state"] == "running":
        _follow(token(), target(address), job["id"])
        job = send(GetJob(actor_token=token(), address=target(address), job_id=job["id"]), COPYJOB).result
    console.print(_job_table(job))


def _job_table(job: dict[str, Any]) -> Table:
    """A copy's folders with copied, already there and too big; a purge's with what it removed."""
    title = f"{job['kind']} job {job['id']}: {job['state']}" + (f" ({job['reason']})" if job["reason"] else "")
    if job.get("limit"):
        title += f", limit {job['limit']:,}"
    totals = job["totals"]
    if job["kind"] == "purge":
        table = Table("folder", "state", "removed", header_style="bold", title=title)
        for folder in job["folders"]:
            table.add_row(folder["name"], folder["state"], str(folder["copied"]))
        table.add_row("total", f"{totals['folders_removed']} of your folders removed", str(totals["removed"]))
        return table
    table = Table("folder", "state", "copied", "already there", "too big", header_style="bold", title=title)
    for folder in job["folders"]:
        name = folder["name"] + (f"  (from {folder['source']!r})" if folder.get("renamed") else "")
        state = folder["state"] + (f": {_SKIPPED[folder['skipped']]}" if folder.get("skipped") else "")
        table.add_row(name, state, str(folder["copied"]), str(folder["already_there"]), str(len(folder["too_big"])))
    table.add_row("total", "", str(totals["copied"]), str(totals["already_there"]), str(totals["skipped_too_big"]))
    notes = [f"{totals['flags_dropped']} flags the source sent were not IMAP flags and were left off"
             if totals.get("flags_dropped") else "",
             f"{totals['renamed_folders']} folders had no valid name here and got a safe one" if totals.get("renamed_folders") else "",
             "our server would not store " + ", ".join(r for f in job["folders"] for r in f.get("refused", ()))
             if totals.get("skipped_refused") else ""]
    table.caption = "; ".join(note for note in notes if note) or None
    return table


_SKIPPED = {"refused_here": "our server refused it", "refused_at_source": "the source would not open it"}


@copy_app.command("notifications")
def copy_notifications(job_id: Annotated[str | None, typer.Argument(help="default: every notification kept")] = None,
                       address: Address = None) -> None:
    """The notification mails of your jobs (and password changes): state, attempts, last error."""
    shown = send(GetNotifications(actor_token=token(), address=target(address), job_id=job_id), NOTIFIER).result
    if emitted(shown):
        return
    table = Table("kind", "to", "job", "state", "attempts", "last error", header_style="bold")
    for n in shown["notifications"]:
        table.add_row(n["kind"], n["to"], n["job_id"] or "", n["state"], str(n["attempts"]), n["last_error"] or "")
    console.print(table)


@copy_app.command("cancel")
def copy_cancel(job_id: str, address: Address = None) -> None:
    """Stop a running copy job (what was copied stays)."""
    job = send(CancelJob(actor_token=token(), address=target(address), job_id=job_id), COPYJOB).result
    accepted(Accepted(result=job), f"job {job_id} is {job['state']}")


@account_app.command("retention")
def account_retention(address: str) -> None:
    """Admin: the account's last retention pass (INBOX mail over 180 days to Archive, Trash over 31 days deleted)."""
    shown = send(GetRetention(actor_token=token(), address=address.lower()), COPYJOB).result
    if emitted(shown):
        return
    if not shown["applies"]:
        console.print(f"{address}: no retention on its plan")
    elif (last := shown["last"]) is None:
        console.print(f"{address}: no pass yet")
    else:
        console.print(f"{address}: {shown['passes']} pass(es); the last at {last['ran_at']} (as of {last['as_of']}): "
                      f"{last['archived']} moved to Archive, {last['expunged']} deleted from Trash")


@mail_app.command("purge")
def mail_purge(address: Address = None,
               yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
               follow: Annotated[bool, typer.Option(help="show the progress until the job ends")] = True) -> None:
    """Delete every message in the mailbox, and your own folders (INBOX and Sent, Drafts, Trash,
    Junk, Archive stay, and so does mail arriving meanwhile). It cannot be undone."""
    whose = target(address)
    if not confirmed(f"Delete all mail of {whose} for good?", yes):
        raise typer.Exit(1)
    reply = send(PurgeMailbox(actor_token=token(), address=whose), COPYJOB)
    if emitted(reply.result or {}):
        return
    console.print(f"[green]accepted[/]: job {reply.result['job_id']}")
    if follow:
        _follow(token(), whose, reply.result["job_id"])


def _follow(actor_token: str, address: str, job_id: str) -> None:
    import time

    from rich.progress import Progress

    with Progress(console=console) as progress:
        task = progress.add_task("planning", total=None)
        while True:
            job = send(GetJob(actor_token=actor_token, address=address, job_id=job_id), COPYJOB).result
            folders = job["folders"]
            known = bool(folders) and all(f["total"] is not None for f in folders)
            total, done = (sum(f["total"] for f in folders) if known else None), sum(f["copied"] for f in folders)
            if job["state"] == "completed":
                total = done = max(total or 0, done, 1)  # a job with nothing to do ends at 100%, not 0%
            progress.update(task, total=total, completed=done,
                            description=f"{job['state']}: {sum(f['state'] == 'done' for f in folders)}/{len(folders)} folders")
            if job["state"] != "running":
                break
            time.sleep(1)
    console.print(f"job {job_id}: [bold]{job['state']}[/]" + (f" ({job['reason']})" if job["reason"] else ""))


if __name__ == "__main__":
    app()
