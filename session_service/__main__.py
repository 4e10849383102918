"""``python -m session_service``: run the session service, configured from the environment."""

from __future__ import annotations

import asyncio
import sys

from session_service import logs
from session_service.config import ConfigError, Settings
from session_service.server import serve


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"session_service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
