"""telemetry-kit for Python: signed, batched telemetry events that survive restarts and outages.

from telemetry_kit import Client

telemetry = Client(service_name="my-tool")  # TK_ENDPOINT, TK_ORG_ID, TK_APP_ID, TK_SECRET
telemetry.track("command", {"name": "build", "success": True}, category="cli")
"""

import logging

__version__ = "0.1.0"

# A library's logger stays silent until the application configures logging (then it shows what was
# dropped and why): an end user's terminal is no place for telemetry's troubles.
logging.getLogger("telemetry_kit").addHandler(logging.NullHandler())

from telemetry_kit.aio import AsyncClient  # noqa: E402
from telemetry_kit.client import Client, Dropped, Stats  # noqa: E402
from telemetry_kit.config import Config  # noqa: E402

__all__ = ["AsyncClient", "Client", "Config", "Dropped", "Stats", "__version__"]
