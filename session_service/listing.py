"""ListSessions: SCAN every primary, decrypt ids, return metadata pages with opaque tokens.

A page that fills up in the middle of a SCAN batch hands the tags of the
batch's remaining keys to the next page in its token, so a page never exceeds
its size even though SCAN's COUNT is only a hint, and a session that lives
through the whole listing is returned even if others of its batch vanish
between pages (counting "how far into the batch" would skip it). Each SCAN
asks for about as many keys as the page still needs, which keeps that list
short. Tokens are MAC'd so a client cannot point the scan anywhere else.
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
# The smallest COUNT asked of SCAN: smaller ones make many round trips on a sparse keyspace.
_MIN_SCAN_COUNT = 16


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a listing resumes: the tags still to return, then the SCAN of ``target``
    from ``cursor``; ``target`` None once every server has been walked."""

    target: str | None
    cursor: int
    pending: tuple[str, ...] = ()


class Lister:
    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def _encode(self, position: _Position, prefix: str) -> str:
        payload = json.dumps(
            [position.target, position.cursor, list(position.pending), _prefix_digest(prefix)],
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
            target, cursor, pending, digest = json.loads(payload)
            if digest != _prefix_digest(prefix):
                raise ValueError("prefix changed")
            if isinstance(pending, int):
                # A token from a replica of the previous release during a rollout: a count
                # into the batch at ``cursor``. Rescanning that batch whole may repeat
                # sessions but never skips one.
                pending = []
            return _Position(
                None if target is None else str(target),
                int(cursor),
                tuple(str(tag) for tag in pending),
            )
        except (ValueError, TypeError, binascii.Error):
            raise InvalidArgument(
                [("page_token", "not a token from a previous page with this session_id_prefix")]
            ) from None

    async def page(self, size: int, token: str, prefix: str) -> tuple[list[Metadata], str]:
        store = self._store
        targets = await store.call(store.backend.scan_targets, idempotent=True)
        position = self._decode(token, prefix) if token else _Position(targets[0], 0)
        found: list[Metadata] = []
        if position.pending:
            rest = await self._take(position.pending, found, size, prefix)
            if rest:
                return found, self._encode(
                    _Position(position.target, position.cursor, rest), prefix
                )
        target, cursor = position.target, position.cursor
        if target is None:
            return found, ""
        if target not in targets:
            # The topology changed under the listing: go on with the next server.
            later = [t for t in targets if t > target]
            if not later:
                return found, ""
            target, cursor = later[0], 0
        for _ in range(_MAX_SCANS_PER_PAGE):
            if len(found) == size:
                break
            count = max(size - len(found), _MIN_SCAN_COUNT)
            scan = functools.partial(
                store.backend.scan, target, cursor, store.session_pattern, count
            )
            next_cursor, keys = await store.call(scan, idempotent=True)
            following = _advance(targets, target, next_cursor)
            rest = await self._take(tuple(_tag_of(k) for k in keys), found, size, prefix)
            if rest:
                after = following or _Position(None, 0)
                return found, self._encode(_Position(after.target, after.cursor, rest), prefix)
            if following is None or following.target is None:
                return found, ""
            target, cursor = following.target, following.cursor
        return found, self._encode(_Position(target, cursor), prefix)

    async def _take(
        self, tags: tuple[str, ...], found: list[Metadata], size: int, prefix: str
    ) -> tuple[str, ...]:
        """Append the live sessions of ``tags`` matching ``prefix`` to ``found``, up to
        ``size`` in all; returns the tags left unexamined."""
        metas = await self._metadata(tags)
        for index, meta in enumerate(metas):
            if meta is None or not meta.session_id.startswith(prefix):
                continue
            found.append(meta)
            if len(found) == size:
                return tags[index + 1 :]
        return ()

    async def _metadata(self, tags: tuple[str, ...]) -> list[Metadata | None]:
        if not tags:
            return []
        store = self._store

        async def fetch() -> list[object]:
            pipe = store.backend.commands.pipeline(transaction=False)
            for tag in tags:
                keys = store.keys_for_tag(tag)
                pipe.hmget(keys.session, _FIELDS)
                pipe.exists(keys.lock)
            result: list[object] = await pipe.execute()
            return result

        replies = await store.call(fetch, idempotent=True)
        metas: list[Metadata | None] = []
        for tag, fields, locked in zip(tags, replies[::2], replies[1::2], strict=True):
            metas.append(self._parse(tag, fields, int(locked)))
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
        return _Position(target, next_cursor)
    later = [t for t in targets if t > target]
    return _Position(later[0], 0) if later else None
