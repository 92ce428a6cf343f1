"""A small service defined only for the kit's tests: counters per address (commands), a note per
deleted account (an event turned into its own command), slow effects on a work queue, and a
`Whoami` that asks the kit's session guard."""

from shared.registry import ServiceEntry

KIT_SERVICE = ServiceEntry(
    name="kitsvc", module="tests.kit.service", settings="tests.kit.service.entrypoint:KitServiceSettings",
    secrets=("AMQP_URL", "MONGODB_URL"), reacts_to=("account",),
)
