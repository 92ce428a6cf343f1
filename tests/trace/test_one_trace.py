"""One trace per user action, across processes: every service exports its spans to a file of its own
(OTEL_EXPORTER=file, tests/conftest.py spans_dir); the test joins them by trace id and checks the tree,
from the span the command was sent under (as the panel's request span) down to the mail server."""

import uuid
from typing import Any

from aiosmtpd.controller import Controller
from opentelemetry.trace import SpanKind

from services.copyjob.adapters.imap import Session
from shared.client import CommandClient
from shared.contracts.account import SERVICE as ACCOUNT
from shared.contracts.account import CreateAccount, Login
from shared.contracts.copyjob import SERVICE as COPYJOB
from shared.contracts.copyjob import GetJob, JobCompleted, StartCopy
from shared.contracts.rules import SERVICE as RULES
from shared.contracts.rules import AddForwarding, GetRules
from shared.registry import SERVICES
from shared.telemetry import span, trace_headers
from tests.rules.mail_world import outside, rules_account
from tests.support import (
    ServiceProcess,
    eventually,
    exported_spans,
    exported_text,
    free_port,
    holds,
    new_address,
    publish_event,
)
from tests.trace.memory import memory_spans

PASSWORD = "Trace-Own-Passw0rd!"
SOURCE_PASSWORD = "Trace-Source-Pw-7"
Span = dict[str, Any]


class Trace:
    """The exported spans of one trace, by id."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.by_id = {s["context"]["span_id"]: s for s in spans}

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s["name"] == name]

    def one(self, name: str, **attributes: Any) -> Span:
        found = [s for s in self.named(name) if all(s["attributes"].get(k) == v for k, v in attributes.items())]
        assert found, f"no {name} {attributes} in {sorted({s['name'] for s in self.spans})}"
        return found[0]

    def ancestors(self, child: Span) -> list[str]:
        """Names of the span's ancestors, nearest first, as far as the exported spans go."""
        names, parent = [], child["parent_id"]
        while parent in self.by_id:
            names.append(self.by_id[parent]["name"])
            parent = self.by_id[parent]["parent_id"]
        return names


def hex_id(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


async def traced(spans_dir, trace_id: int, *names: str) -> Trace:
    """The trace once every span named has been exported."""
    wanted = hex_id(trace_id, 32)

    def current() -> Trace:
        return Trace([s for s in exported_spans(spans_dir) if s["context"]["trace_id"] == wanted])

    async def complete() -> bool:
        have = {s["name"] for s in current().spans}
        return all(name in have for name in names)

    await eventually(complete, timeout=60, what=f"spans {names} in one trace")
    return current()


def assert_no_secret(spans_dir, *secrets: str) -> None:
    exported = exported_text(spans_dir)
    for secret in secrets:
        assert secret not in exported


async def test_an_added_forward_is_one_trace_from_the_click_to_managesieve(
        client, admin_token, rules_service, spans_dir):
    """Ensure AddForwarding sent under a request's span -> its span -> RulesChanged, and DeployRules ->
    the ManageSieve PUTSCRIPT -> RecordDeployment -> RulesApplied, all one trace, each the child of the
    step that caused it, with the account and outcome; no token in any span."""
    memory_spans()  # this process's own spans need a tracer provider
    address = await rules_account(client, admin_token)
    with span("POST /accounts/{address}/forwarding", kind=SpanKind.SERVER) as click:
        command = AddForwarding(actor_token=admin_token, address=address, condition="all", destinations=[outside()])
        reply = await client.request(RULES, command)
    assert reply.status == "accepted", reply

    found = await traced(spans_dir, click.get_span_context().trace_id, "AddForwarding", "RulesChanged", "DeployRules",
                         "ManageSieve PUTSCRIPT", "RecordDeployment", "RulesApplied")
    added = found.one("AddForwarding")
    assert added["parent_id"] == hex_id(click.get_span_context().span_id, 16)
    assert added["attributes"]["mailss.account"] == address and added["attributes"]["mailss.outcome"] == "accepted"
    assert found.one("RulesChanged")["parent_id"] == added["context"]["span_id"]
    sieve = found.one("ManageSieve PUTSCRIPT", **{"mailss.account": address})
    assert found.ancestors(sieve)[:1] == ["DeployRules"] and "AddForwarding" in found.ancestors(sieve)
    applied = found.one("RulesApplied", **{"mailss.account": address})
    assert found.ancestors(applied)[:2] == ["RecordDeployment", "DeployRules"]
    assert "AddForwarding" in found.ancestors(applied)
    assert {s["resource"]["attributes"]["service.name"] for s in found.spans} == {"mailss-rules"}
    assert_no_secret(spans_dir, admin_token)

    async def applied_on_the_server() -> bool:
        rules = (await client.request(RULES, GetRules(actor_token=admin_token, address=address))).result
        return rules["mail_server"]["state"] == "applied"

    await eventually(applied_on_the_server, what="the rules on the mail server")


async def _copy_user(client: CommandClient, admin_token: str, source_server) -> tuple[str, str]:
    address = new_address()
    reply = await client.request(ACCOUNT, CreateAccount(actor_token=admin_token, address=address, plan="kwc",
                                                        initial_password=PASSWORD))
    assert reply.status == "accepted", reply
    await source_server.add_user(address, SOURCE_PASSWORD)
    source = await Session.open("127.0.0.1", source_server.port, tls=None, server_hostname=None, user=address,
                                password=SOURCE_PASSWORD)
    try:
        await source.create("Projects")
        for folder in ("INBOX", "Projects"):
            await source.append(folder, b"Subject: traced\r\n\r\nbody\r\n", (), "1500000000")
    finally:
        await source.close()
    login = await client.request(ACCOUNT, Login(login=address, password=PASSWORD))
    return address, login.result["token"]


async def test_a_copy_is_one_trace_from_the_click_to_the_notification_mail(
        client, admin_token, copyjob_service, notifier_service, source_server, spans_dir):
    """Ensure StartCopy sent under a request's span -> VerifyPassword (the account service) -> the plan and
    a step per folder with its IMAP APPEND -> JobCompleted -> the notifier's Notify and SendNotification ->
    the SMTP send, all one trace across three services; no password or token in any span."""
    memory_spans()
    address, token = await _copy_user(client, admin_token, source_server)
    with span("POST /accounts/{address}/copy", kind=SpanKind.SERVER) as click:
        start = StartCopy(actor_token=token, address=address, current_password=PASSWORD, source_host="127.0.0.1",
                          source_port=source_server.port, source_security="plain", source_password=SOURCE_PASSWORD,
                          notification_address=outside("told"))
        reply = await client.request(COPYJOB, start)
    assert reply.status == "accepted", reply
    job_id = reply.result["job_id"]

    found = await traced(spans_dir, click.get_span_context().trace_id, "StartCopy", "VerifyPassword", "PlanCopy",
                         "CopyFolder", "IMAP APPEND", "JobCompleted", "Notify", "SendNotification", "SMTP send")
    started = found.one("StartCopy")
    assert started["parent_id"] == hex_id(click.get_span_context().span_id, 16)
    assert "StartCopy" in found.ancestors(found.one("VerifyPassword"))
    assert "StartCopy" in found.ancestors(found.one("PlanCopy", **{"mailss.job_id": job_id}))
    for folder in ("INBOX", "Projects"):
        append = found.one("IMAP APPEND", **{"mailss.folder": folder})
        assert append["attributes"]["mailss.messages"] == 1 and append["attributes"]["mailss.refused"] == 0
        assert found.ancestors(append)[0] == "CopyFolder" and "StartCopy" in found.ancestors(append)
    completed = found.one("JobCompleted", **{"mailss.job_id": job_id})
    assert completed["kind"] == "SpanKind.PRODUCER" and "StartCopy" in found.ancestors(completed)
    sent = found.one("SMTP send", **{"mailss.job_id": job_id})
    assert sent["attributes"]["mailss.outcome"] == "sent"
    assert found.ancestors(sent)[:2] == ["SendNotification", "Notify"]
    assert {"JobCompleted", "StartCopy"} <= set(found.ancestors(sent))
    assert {s["resource"]["attributes"]["service.name"] for s in found.spans} >= {
        "mailss-copyjob", "mailss-account", "mailss-notifier"}
    assert_no_secret(spans_dir, PASSWORD, SOURCE_PASSWORD, token, admin_token)

    job = await client.request(COPYJOB, GetJob(actor_token=token, address=address, job_id=job_id))
    assert job.result["state"] == "completed", job.result


class Accepting:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 OK"


async def test_a_notification_retried_later_links_to_the_action_that_caused_it(
        client, admin_token, amqp_url, notifier_service, notifier_env, spans_dir):
    """Ensure a notification whose first SMTP send finds no server is retried by the sweep in a trace of its
    own, linked to the trace of the job that caused it, every retry alike, until one is sent."""
    memory_spans()
    port, address = free_port(), new_address()
    plain = {name: value for name, value in notifier_env.items() if name != "SMTP_PASSWORD"}
    await notifier_service.stop()
    own = ServiceProcess(SERVICES["notifier"], {**plain, "SMTP_PORT": str(port)}, amqp_url, instance="test-notifier-traced")
    try:
        await own.start()
        done = JobCompleted(job_id=uuid.uuid4().hex, address=address, notification_address=outside("later"), copied=1,
                            already_there=0, copied_bytes=10, skipped_too_big=0)
        with span("JobCompleted", kind=SpanKind.PRODUCER) as job:  # as the copy job's relay publishes it
            await publish_event(amqp_url, done, headers=trace_headers())
        first = await traced(spans_dir, job.get_span_context().trace_id, "Notify", "SMTP send")
        assert first.one("SMTP send")["attributes"]["mailss.outcome"] == "retry"
        await eventually(lambda: holds(len(_retries(spans_dir, done.job_id)) >= 2), timeout=30, what="two retries")
        controller = Controller(Accepting(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await eventually(lambda: holds(bool(_sent(spans_dir, done.job_id))), timeout=30, what="a retry sent")
        finally:
            controller.stop()
    finally:
        await own.stop()
        await notifier_service.start()

    job_trace = f"0x{job.get_span_context().trace_id:032x}"
    for retry in _retries(spans_dir, done.job_id):
        assert retry["context"]["trace_id"] != job_trace and retry["parent_id"] is None
        assert [link["context"]["trace_id"] for link in retry["links"]] == [job_trace]
    [sent] = _sent(spans_dir, done.job_id)
    retried = Trace([s for s in exported_spans(spans_dir) if s["context"]["trace_id"] == sent["context"]["trace_id"]])
    assert "RetryNotification" in retried.ancestors(sent)


def _retries(spans_dir, job_id: str) -> list[Span]:
    """RetryNotification spans of the job's notification (the SMTP sends under them name the job)."""
    sends = [s for s in exported_spans(spans_dir) if s["name"] == "SMTP send" and s["attributes"].get("mailss.job_id") == job_id]
    traces = {s["context"]["trace_id"] for s in sends}
    return [s for s in exported_spans(spans_dir) if s["name"] == "RetryNotification" and s["context"]["trace_id"] in traces]


def _sent(spans_dir, job_id: str) -> list[Span]:
    return [s for s in exported_spans(spans_dir) if s["name"] == "SMTP send" and s["attributes"].get("mailss.job_id") == job_id
            and s["attributes"].get("mailss.outcome") == "sent"]
