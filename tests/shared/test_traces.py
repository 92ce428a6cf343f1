"""The kit's spans: one per delivery, named after the message, continuing the trace its headers bring;
what a command stages carries its context, and its aggregate remembers it for later work to link to."""

from opentelemetry.trace import SpanKind

from shared.contracts.account import ChangeComment, SetFirstAdmin
from shared.telemetry import span, trace_headers
from shared.topology import ACCOUNT_KEY_HEADER
from tests.trace.memory import memory_spans

ADDRESS = "a@example.jp"
TOKEN = "actor-token-never-in-a-span"


def change_comment() -> ChangeComment:
    return ChangeComment(actor_token=TOKEN, address=ADDRESS, comment="x")


async def test_a_command_span_is_named_after_it_and_a_child_of_its_sender(consumer, deliver, broker, collection):
    """Ensure the handling span is `ChangeComment`, a child of the sender's span, with the account and
    outcome; the event it staged has a span of its own under it, whose context the event carries; the
    aggregate keeps the command's."""
    spans = memory_spans()
    with span("click", kind=SpanKind.SERVER) as click:
        headers = {ACCOUNT_KEY_HEADER: ADDRESS, **trace_headers()}
    await consumer(deliver(change_comment(), headers=headers))

    [handled] = [s for s in spans.get_finished_spans() if s.name == "ChangeComment"]
    assert handled.parent is not None and handled.parent.span_id == click.get_span_context().span_id
    assert handled.context.trace_id == click.get_span_context().trace_id
    assert handled.attributes["mailss.account"] == ADDRESS and handled.attributes["mailss.outcome"] == "accepted"
    assert TOKEN not in str(dict(handled.attributes))
    [(_, event)] = broker.events
    [published] = [s for s in spans.get_finished_spans() if s.name == "CommentChanged"]
    assert published.parent is not None and published.parent.span_id == handled.context.span_id
    assert event["headers"]["traceparent"].split("-")[1:3] == [f"{handled.context.trace_id:032x}",
                                                             f"{published.context.span_id:016x}"]
    assert collection.docs[ADDRESS]["trace"]["traceparent"].split("-")[2] == f"{handled.context.span_id:016x}"

async def test_a_command_without_context_links_to_the_aggregates_last_cause(consumer, deliver, collection):
    """Ensure a command that comes without a trace (a sweep, a retry) starts a trace of its own linked to
    the one that last changed the aggregate, and leaves that cause stored for the next."""
    spans = memory_spans()
    with span("click"):
        headers = {ACCOUNT_KEY_HEADER: ADDRESS, **trace_headers()}
    await consumer(deliver(change_comment(), headers=headers))
    cause = collection.docs[ADDRESS]["trace"]
    [first] = [s for s in spans.get_finished_spans() if s.name == "ChangeComment"]

    await consumer(deliver(change_comment(), headers={ACCOUNT_KEY_HEADER: ADDRESS}, channel="same"))

    [_, later] = [s for s in spans.get_finished_spans() if s.name == "ChangeComment"]
    assert later.parent is None and later.context.trace_id != first.context.trace_id
    assert [link.context.span_id for link in later.links] == [first.context.span_id]
    assert collection.docs[ADDRESS]["trace"] == cause


async def test_what_a_retry_leads_to_still_names_the_first_cause(consumer, deliver, collection, broker):
    """Ensure a command caused by a retry (it carries the retry's trace) stores the retry's own cause, not
    the retry, so a second retry links to the user's action too."""
    memory_spans()
    with span("click"):
        headers = {ACCOUNT_KEY_HEADER: ADDRESS, **trace_headers()}
    await consumer(deliver(change_comment(), headers=headers))
    cause = collection.docs[ADDRESS]["trace"]
    await consumer(deliver(change_comment(), headers={ACCOUNT_KEY_HEADER: ADDRESS}, channel="same"))
    retried_event = broker.events[-1][1]["headers"]
    assert retried_event["traceparent"] != cause["traceparent"] and "baggage" in retried_event

    caused = SetFirstAdmin(login=ADDRESS)  # any internal command the retry's work sends
    await consumer(deliver(caused, headers={**retried_event, ACCOUNT_KEY_HEADER: ADDRESS}, exchange="account.internal",
                           channel="same"))

    assert collection.docs[ADDRESS]["trace"] == cause


async def test_a_set_aside_command_keeps_no_trace_context_in_the_dead_letter(consumer, deliver, broker):
    """Ensure a command set aside is traced as such and its dead letter carries no context to continue."""
    spans = memory_spans()
    with span("click"):
        headers = {ACCOUNT_KEY_HEADER: "someone-else@example.jp", **trace_headers()}
    await consumer(deliver(change_comment(), headers=headers))

    [handled] = [s for s in spans.get_finished_spans() if s.name == "ChangeComment"]
    assert handled.attributes["mailss.outcome"] == "set aside"
    [(_, dead)] = broker.set_aside
    assert "traceparent" not in dead["headers"]


async def test_an_event_the_sweeper_relays_later_stays_in_the_trace_of_its_command(consumer, deliver, broker):
    """Ensure an event its command could not publish, relayed later by a FlushOutbox that brings no trace,
    still carries the context stored with it: its consumers join the command's trace."""
    from shared.contracts.base import FlushOutbox

    spans = memory_spans()
    broker.fail(RuntimeError("relay bug"), when=lambda body, kwargs: kwargs.get("exchange") == "events")
    with span("click"):
        headers = {ACCOUNT_KEY_HEADER: ADDRESS, **trace_headers()}
    await consumer(deliver(change_comment(), headers=headers))
    assert broker.events == []

    await consumer(deliver(FlushOutbox(key=ADDRESS), headers={ACCOUNT_KEY_HEADER: ADDRESS}, exchange="account.internal",
                           channel=object()))

    [(_, event)] = broker.events
    [published] = [s for s in spans.get_finished_spans() if s.name == "CommentChanged"]
    assert event["headers"]["traceparent"].split("-")[1:3] == [f"{published.context.trace_id:032x}",
                                                             f"{published.context.span_id:016x}"]


async def test_a_clients_baggage_cannot_name_the_cause_of_its_change(consumer, deliver, collection):
    """Ensure a client command's own context is stored as the cause, whatever baggage it sends along."""
    memory_spans()
    forged = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with span("click"):
        headers = {ACCOUNT_KEY_HEADER: ADDRESS, **trace_headers(), "baggage": f"mailss.cause={forged}"}
    await consumer(deliver(change_comment(), headers=headers))

    assert collection.docs[ADDRESS]["trace"]["traceparent"] != forged
