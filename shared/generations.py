"""Generations of an address: deleted and created again, it is a new account that only shares the
name. State another service derives per account remembers when the generation it was made from
began (the `occurred_at` of its AccountCreated); an event that occurred before that belongs to an
earlier generation (a late redelivery, a slow relay) and changes nothing.
"""

from datetime import datetime


def of_earlier_generation(occurred_at: datetime, generation: datetime | None) -> bool:
    return generation is not None and occurred_at < generation
