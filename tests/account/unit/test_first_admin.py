"""The first admin, set from settings by the start-up command SetFirstAdmin in the admin's own turn."""

from datetime import timedelta

from services.account.application.first_admin import FirstAdmin, set_first_admin
from services.account.domain.account import Admin
from shared.contracts.account import AdminChanged, SetFirstAdmin

WANTED = FirstAdmin(login="admin", password="First-Admin-Passw0rd!", domains=frozenset({"example.jp"}))


async def test_first_start_creates_the_admin_and_says_so(deps, accounts, clock):
    """Ensure the first start stores the admin with a hashed password and publishes AdminChanged."""
    reply = await set_first_admin(SetFirstAdmin(login="admin"), deps, WANTED)

    assert reply.status == "accepted"
    admin = accounts.principal("admin")
    assert admin == Admin(login="admin", password_hash="hash:" + WANTED.password, domains=WANTED.domains,
                          sessions_valid_from=clock.now)
    [event] = accounts.saved_events
    assert isinstance(event, AdminChanged)
    assert (event.login, event.domains, event.sessions_valid_from) == ("admin", ("example.jp",), clock.now)
    assert WANTED.password not in event.model_dump_json()


async def test_a_restart_with_the_same_settings_changes_nothing(deps, accounts, clock):
    """Ensure starting again with unchanged settings writes nothing and ends no session."""
    await set_first_admin(SetFirstAdmin(login="admin"), deps, WANTED)
    before = accounts.snapshot()
    clock.advance(timedelta(minutes=5))

    await set_first_admin(SetFirstAdmin(login="admin"), deps, WANTED)

    assert accounts.snapshot() == before


async def test_changed_password_or_domains_end_earlier_admin_sessions(deps, accounts, clock):
    """Ensure a new password or domain list in settings replaces the admin and moves sessions_valid_from on."""
    await set_first_admin(SetFirstAdmin(login="admin"), deps, WANTED)
    clock.advance(timedelta(minutes=5))

    await set_first_admin(SetFirstAdmin(login="admin"), deps,
                          FirstAdmin(login="admin", password=WANTED.password, domains=frozenset({"example.com"})))

    admin = accounts.principal("admin")
    assert admin.domains == frozenset({"example.com"}) and admin.sessions_valid_from == clock.now
    assert [type(e) for e in accounts.saved_events] == [AdminChanged, AdminChanged]
