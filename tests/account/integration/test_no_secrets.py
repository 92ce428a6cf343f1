"""Secrets never reach logs, traces, events or replies."""

from shared.contracts.account import SERVICE, ChangePassword, CreateAccount, Login
from tests.support import eventually, exported_spans, exported_text, new_address

FIRST, SECOND = "Trace-Canary-Pw1!", "Trace-Canary-Pw2!"


async def test_passwords_and_tokens_stay_out_of_traces_logs_and_events(client, admin_token, account_service, events,
                                                                      spans_dir):
    """Ensure spans are exported for a command while no password or session token appears in them, the log or events."""
    address = new_address()
    await client.request(SERVICE, CreateAccount(actor_token=admin_token, address=address, plan="kwc", initial_password=FIRST))
    login = await client.request(SERVICE, Login(login=address, password=FIRST))
    token = login.result["token"]
    change = ChangePassword(actor_token=token, address=address, new_password=SECOND, current_password=FIRST)
    reply = await client.request(SERVICE, change)
    assert reply.status == "accepted"

    async def span_exported() -> bool:
        return str(change.message_id) in exported_text(spans_dir)

    await eventually(span_exported, timeout=30, what="the command's span in the exported traces")
    await eventually(lambda: _event_for(events, address), what="PasswordChanged")
    exported = account_service.log_path.read_text() + exported_text(spans_dir)
    published = "".join(m["body"] for m in events.received) + reply.model_dump_json()
    for secret in (FIRST, SECOND, token, admin_token):
        assert secret not in exported
        assert secret not in published


async def _event_for(events, address: str) -> bool:
    return bool(events.of_type("PasswordChanged", address=address))


async def test_events_continue_the_trace_of_their_command(client, admin_token, account_service, events, spans_dir):
    """Ensure an event relayed from the outbox carries the trace of the command that caused it."""
    command = CreateAccount(actor_token=admin_token, address=new_address(), plan="kwc", initial_password=FIRST)
    assert (await client.request(SERVICE, command)).status == "accepted"
    await eventually(lambda: _created(events, command.address), what="AccountCreated")
    [event] = [m for m in events.received if f'"address":"{command.address}"' in m["body"] and "AccountCreated" in m["body"]]

    async def consumed_span() -> list[dict]:
        return [s for s in exported_spans(spans_dir) if s["name"] == "CreateAccount"
                and s["attributes"].get("messaging.message.id") == str(command.message_id)]

    await eventually(lambda: _non_empty(consumed_span), timeout=30, what="the command's consume span")
    [span] = await consumed_span()
    _, trace_id, parent_id, _ = event["headers"]["traceparent"].split("-")
    assert trace_id == span["context"]["trace_id"].removeprefix("0x")
    [published] = [s for s in exported_spans(spans_dir) if s["context"]["span_id"] == f"0x{parent_id}"]
    assert published["name"] == "AccountCreated" and published["parent_id"] == span["context"]["span_id"]


async def _created(events, address: str) -> bool:
    return bool(events.of_type("AccountCreated", address=address))


async def _non_empty(find) -> bool:
    return bool(await find())
