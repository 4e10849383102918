"""ListSessions: SCAN every primary, decrypt ids, return metadata pages with opaque tokens.

A page token names the server being walked, the SCAN cursor of the batch in
progress and how many keys of that batch were already returned, so a page
never exceeds its size even though SCAN's COUNT is only a hint. Tokens are
MAC'd so a client cannot point the scan anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

from session_service.crypto import CorruptValue
from session_service.errors import InvalidArgument
from session_service.model import Metadata
from session_service.store import SessionStore

log = logging.getLogger(__name__)

_FIELDS = ("i", "v", "c", "u", "e", "m", "t", "f", "b")
# Bounds the work of one page on a sparse keyspace; the caller continues with the token.
_MAX_SCANS_PER_PAGE = 32


@dataclass(frozen=True, slots=True)
class _Position:
    target: str
    cursor: int
    skip: int


class Lister:
    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def _encode(self, position: _Position, prefix: str) -> str:
        payload = json.dumps(
            [position.target, position.cursor, position.skip, _prefix_digest(prefix)],
            separators=(",", ":"),
        ).encode()
        raw = payload + self._store.crypto.mac(payload)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode(self, token: str, prefix: str) -> _Position:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, mac = raw[:-16], raw[-16:]
            if not hmac.compare_digest(mac, self._store.crypto.mac(payload)):
                raise ValueError("bad mac")
            target, cursor, skip, digest = json.loads(payload)
            if digest != _prefix_digest(prefix):
                raise ValueError("prefix changed")
            return _Position(str(target), int(cursor), int(skip))
        except (ValueError, TypeError, binascii.Error):
            raise InvalidArgument(
                [("page_token", "not a token from a previous page with this session_id_prefix")]
            ) from None

    async def page(self, size: int, token: str, prefix: str) -> tuple[list[Metadata], str]:
        store = self._store
        targets = await store.call(store.backend.scan_targets, idempotent=True)
        if token:
            position = self._decode(token, prefix)
            later = [t for t in targets if t >= position.target]
            if not later:
                return [], ""
            if later[0] != position.target:
                position = _Position(later[0], 0, 0)
        else:
            position = _Position(targets[0], 0, 0)
        found: list[Metadata] = []
        for _ in range(_MAX_SCANS_PER_PAGE):
            scan = functools.partial(
                store.backend.scan, position.target, position.cursor, store.session_pattern, size
            )
            next_cursor, keys = await store.call(scan, idempotent=True)
            keys = keys[position.skip :]
            metas = await self._metadata(keys)
            for index, meta in enumerate(metas):
                if meta is None or not meta.session_id.startswith(prefix):
                    continue
                found.append(meta)
                if len(found) == size and index + 1 < len(keys):
                    skip = position.skip + index + 1
                    return found, self._encode(
                        _Position(position.target, position.cursor, skip), prefix
                    )
            following = _advance(targets, position.target, next_cursor)
            if following is None:
                return found, ""
            position = following
            if len(found) == size:
                break
        return found, self._encode(position, prefix)

    async def _metadata(self, keys: list[bytes]) -> list[Metadata | None]:
        if not keys:
            return []
        store = self._store

        async def fetch() -> list[object]:
            pipe = store.backend.commands.pipeline(transaction=False)
            for key in keys:
                tag = _tag_of(key)
                pipe.hmget(key, _FIELDS)
                pipe.exists(store.keys_for_tag(tag).lock)
            result: list[object] = await pipe.execute()
            return result

        replies = await store.call(fetch, idempotent=True)
        metas: list[Metadata | None] = []
        for key, fields, locked in zip(keys, replies[::2], replies[1::2], strict=True):
            metas.append(self._parse(_tag_of(key), fields, int(locked)))
        return metas

    def _parse(self, tag: str, fields: list[bytes | None], locked: int) -> Metadata | None:
        if fields[0] is None or any(f is None for f in fields):
            return None  # expired or deleted between SCAN and HMGET
        try:
            session_id = self._store.open_id(tag, fields[0])
        except (CorruptValue, UnicodeDecodeError):
            log.warning("listed session id failed authentication", extra={"tag": tag[:8]})
            return None
        *times, issued, base = fields[1:]
        issued_count, base_value = int(issued or 0), int(base or 0)
        fencing = base_value + issued_count if issued_count else 0  # as the scripts' newest()
        return Metadata.parse(session_id, [*times, fencing, locked])


def _tag_of(key: bytes) -> str:
    text = key.decode()
    return text[text.index("{") + 1 : text.index("}")]


def _prefix_digest(prefix: str) -> str:
    return hashlib.sha256(prefix.encode()).hexdigest()[:16]


def _advance(targets: list[str], target: str, next_cursor: int) -> _Position | None:
    if next_cursor != 0:
        return _Position(target, next_cursor, 0)
    later = [t for t in targets if t > target]
    return _Position(later[0], 0, 0) if later else None
