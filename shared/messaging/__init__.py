"""The service kit's messaging: one concern a module.

broker        broker factory, publishing, subscribing
delivery      what every consumer does with one delivery (retry in place, set aside, settle)
commands      command consumer: one unit of work, one reply, one state change per delivery
events        event consumer: an event becomes the service's own internal command
work          work consumer: competing workers for slow outside effects
outbox        relay and sweeper of the messages an aggregate's document holds
unit_of_work  the aggregate document, its idempotency record, and the shard's cache of them
redaction     secrets out of set-aside bodies and digests
service       run_service(spec): the kit builds everything else
"""
