from services.notifier.entrypoint import SPEC
from shared.messaging.service import run_service

run_service(SPEC)
