import asyncio
import logging

from services.account.entrypoint import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
asyncio.run(create_app().run(logging.INFO))
