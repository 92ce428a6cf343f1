"""Sessions on our Dovecot: an account's mailbox, written through the master user."""

from contextlib import AbstractAsyncContextManager

from services.copyjob.adapters.imap import ImapError, Session
from services.copyjob.adapters.kept_sessions import KeptSessions
from services.copyjob.settings import CopyJobSettings


def kept_ours(sessions: KeptSessions, settings: CopyJobSettings, address: str) -> AbstractAsyncContextManager[Session]:
    """The account's kept session on our Dovecot, or a new one."""
    return sessions.session(("target", address), lambda: open_ours(settings, address))


async def open_ours(settings: CopyJobSettings, address: str) -> Session:
    """A failure here is ours, never the user's: the step is retried (ConnectionError)."""
    try:
        session = await Session.open(settings.dovecot_imap_socket, 0, tls=None, server_hostname=None,
                                     user=f"{address}*{settings.dovecot_master_user}",
                                     password=settings.dovecot_master_password.get_secret_value())
    except ImapError as error:
        raise ConnectionError(f"our Dovecot: {error.category}") from None
    session.ours = True
    return session
