"""``python -m thumbnail_service``: run the thumbnail service, configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from thumbnail_service.config import ConfigError, Settings
from thumbnail_service.server import serve


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"thumbnail_service: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
