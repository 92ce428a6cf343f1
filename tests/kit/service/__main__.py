from shared.messaging.service import run_service
from tests.kit.service.entrypoint import SPEC

run_service(SPEC)
