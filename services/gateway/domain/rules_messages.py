"""The completion messages of the mail settings pages (spam tag and sort, receive, forwarding, autoreply), as msgids (see messages.py)."""

from collections.abc import Mapping

from services.gateway.domain.messages import N_

DONE: Mapping[str, str] = {
    "spam_tag_on": N_("Spam subject tagging has been set to ON."),
    "spam_tag_off": N_("Spam subject tagging has been set to OFF."),
    "spam_sort_on": N_("Spam auto-sort has been set to ON."),
    "spam_sort_off": N_("Spam auto-sort has been set to OFF."),
    "receive_on": N_("Mail receiving has been set to ON."),
    "receive_off": N_("Mail receiving has been set to OFF."),
    "pop_receive_on": N_("POP receiving has been set to ON."),
    "pop_receive_off": N_("POP receiving has been set to OFF."),
    "forward_added": N_("The forwarding setting has been registered."),
    "forward_removed": N_("The forwarding setting has been deleted."),
    "autoreply_set": N_("The autoreply has been registered."),
    "autoreply_changed": N_("The autoreply has been changed."),
    "autoreply_deleted": N_("The autoreply has been deleted."),
}
"""key (the `done` of a redirect) -> msgid marked with messages.N_"""
