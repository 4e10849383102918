"""``python -m session_service``: run the session service, configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from session_service.config import ConfigError, Settings
from session_service.server import serve


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"session_service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
