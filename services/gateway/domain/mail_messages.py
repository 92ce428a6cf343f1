"""The mail data pages' texts as tables (copy from another server, its job page, purge): the
completion messages, a job's states, why a job failed or a folder was left out, and a notification
mail's kind and state. English msgids marked N_ (see messages.py); keys are the contracts' own."""

from collections.abc import Mapping

from services.gateway.domain.messages import N_

DONE: Mapping[str, str] = {
    "copy_accepted": N_("The mail data copy has been accepted. When it ends, a mail is sent to the notification "
                        "address. You can follow its progress on this page."),
    "purge_accepted": N_("The deletion of the mail data has been accepted. Please wait until it is complete."),
    "copy_cancelled": N_("The mail data copy has been cancelled. The mail copied so far stays."),
}
"""key (the `done` of a redirect) -> msgid marked with messages.N_"""

JOB_STATES: Mapping[str, str] = {
    "running": N_("Running"),
    "completed": N_("Completed"),
    "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
}

JOB_KINDS: Mapping[str, str] = {
    "copy": N_("Mail data copy"),
    "purge": N_("Mail data deletion"),
}

FAILURES: Mapping[str, str] = {
    "source_login_refused": N_("The source server refused the login. Please check the source password."),
    "source_unreachable": N_("The source server could not be reached. Please check the server name."),
    "source_tls_failed": N_("A secure connection to the source server could not be made."),
    "source_protocol": N_("The source server answered in a way that could not be understood."),
    "source_stalled": N_("The source server stopped answering."),
    "too_many_folders": N_("The source has more folders than can be copied (at most %(limit)s)."),
    "byte_limit": N_("The mail to copy is larger than one copy may take (at most %(limit)s bytes)."),
    "quota_exceeded": N_("The mailbox here is full (its quota is reached)."),
    "account_deleted": N_("The account was deleted."),
    "internal": N_("An error occurred on our side. Please try again later."),
}
"""every FailureReason of the copy job contract (tests/gateway/unit/test_mail_pages.py holds it to them)"""

FOLDER_STATES: Mapping[str, str] = {
    "pending": N_("In progress"),
    "done": N_("Done"),
    "skipped": N_("Left out"),
}

FOLDER_SKIPS: Mapping[str, str] = {
    "refused_here": N_("this server refused the folder or its mail"),
    "refused_at_source": N_("the source server would not open it"),
}

NOTIFICATION_KINDS: Mapping[str, str] = {
    "copy_completed": N_("Copy completed"),
    "copy_failed": N_("Please copy again"),
    "purge_completed": N_("Deletion completed"),
    "purge_failed": N_("Deletion failed"),
    "password_changed": N_("Password changed"),
}

NOTIFICATION_STATES: Mapping[str, str] = {
    "pending": N_("Being sent"),
    "sent": N_("Sent"),
    "failed": N_("Could not be sent"),
}

WRONG_OWN_PASSWORD = N_("The mail password of this account is not correct.")
CONFIRM_MISMATCH = N_("Please type the mail address %(address)s exactly.")
POLLED_TOO_OFTEN = N_("The progress was asked for too often. Please wait a few seconds.")
