"""The event consumer's translation of an event into the service's own internal commands."""

from datetime import UTC, datetime

from shared.contracts.account import AccountDeleted
from shared.messaging.events import EventConsumer
from shared.messaging.redaction import Redactor
from shared.sessions import REACTIONS, LimitSessions


def consumer() -> EventConsumer:
    return EventConsumer(queue="rules.events", broker=None, service="rules",  # type: ignore[arg-type]
                         parse=None,  # type: ignore[arg-type]
                         reactions=REACTIONS, transient_errors=(), delivery_limit=5,
                         redact=Redactor(frozenset()))


def test_an_event_delivered_twice_becomes_the_very_same_command():
    """Ensure both deliveries of one event give byte-identical commands, so the second is a replay."""
    event = AccountDeleted(address="taro@example.jp", actor="admin", sessions_valid_from=datetime.now(UTC))

    first, second = consumer().commands_for(event), consumer().commands_for(event)

    assert [c.model_dump_json() for c in first] == [c.model_dump_json() for c in second]
    [command] = first
    assert isinstance(command, LimitSessions) and command.deleted
    assert (command.causation_id, command.occurred_at) == (event.message_id, event.occurred_at)


def test_another_service_makes_other_commands_of_the_same_event():
    """Ensure command ids are per service: two services reacting to one event never share an id."""
    event = AccountDeleted(address="taro@example.jp", actor="admin", sessions_valid_from=datetime.now(UTC))
    other = EventConsumer(queue="copyjob.events", broker=None, service="copyjob",  # type: ignore[arg-type]
                          parse=None,  # type: ignore[arg-type]
                          reactions=REACTIONS, transient_errors=(), delivery_limit=5,
                         redact=Redactor(frozenset()))

    assert consumer().commands_for(event)[0].message_id != other.commands_for(event)[0].message_id


def test_an_event_is_believed_only_from_its_owner_under_its_own_key():
    """Ensure the consumer sets aside an event another service's user published, one with no publisher named,
    and one under another routing key than its type's."""
    import pytest

    from shared.messaging.delivery import SetAside
    from shared.messaging.events import from_its_owner

    event = AccountDeleted(address="taro@example.jp", actor="admin", sessions_valid_from=datetime.now(UTC))

    from_its_owner(event, Raw(user_id="mailss-account", routing_key="account.account.deleted"))
    for raw in (Raw(user_id="mailss-copyjob", routing_key="account.account.deleted"),
                Raw(user_id=None, routing_key="account.account.deleted"),
                Raw(user_id="mailss-account", routing_key="account.account.created")):
        with pytest.raises(SetAside):
            from_its_owner(event, raw)


class Raw:
    def __init__(self, user_id: str | None, routing_key: str) -> None:
        self.user_id, self.routing_key = user_id, routing_key
