"""Request validation against the configured limits; every violation is collected, then raised."""

from __future__ import annotations

import re
import secrets

from google.protobuf import duration_pb2, struct_pb2

from session_service.config import Limits
from session_service.errors import InvalidArgument

_ID_CHARS = re.compile(r"^[A-Za-z0-9._:-]+$")
MIN_TTL_MS = 1000
MIN_LEASE_MS = 100
MAX_MASK_PATHS = 256


def duration_ms(value: duration_pb2.Duration) -> int:
    return value.seconds * 1000 + value.nanos // 1_000_000


class Checker:
    """Collects violations for one request; ``done()`` raises them all at once."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.violations: list[tuple[str, str]] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append((field, description))

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)

    def session_id(self, value: str, field: str = "session_id", *, generate: bool = False) -> str:
        if not value and generate:
            return secrets.token_urlsafe(16)
        if not value:
            self.fail(field, "required")
        elif len(value) > self.limits.max_id_length:
            self.fail(field, f"at most {self.limits.max_id_length} characters")
        elif not _ID_CHARS.match(value):
            self.fail(field, "only characters from [A-Za-z0-9._:-]")
        return value

    def data(self, value: struct_pb2.Struct, field: str = "data") -> bytes:
        encoded = value.SerializeToString()
        if len(encoded) > self.limits.max_data_bytes:
            self.fail(field, f"at most {self.limits.max_data_bytes} bytes serialized")
        return encoded

    def ttl(self, value: duration_pb2.Duration, field: str, *, present: bool) -> int | None:
        if not present:
            return None
        ms = duration_ms(value)
        if not MIN_TTL_MS <= ms <= self.limits.max_ttl_ms:
            self.fail(field, f"between 1s and {self.limits.max_ttl_ms // 1000}s")
        return ms

    def lifetime(
        self, value: duration_pb2.Duration, field: str, *, present: bool, ttl_ms: int
    ) -> int:
        if not present:
            return max(self.limits.default_max_lifetime_ms, ttl_ms)
        ms = duration_ms(value)
        if not ttl_ms <= ms <= self.limits.max_lifetime_ms:
            self.fail(field, f"between ttl and {self.limits.max_lifetime_ms // 1000}s")
        return ms

    def lease(self, value: duration_pb2.Duration, field: str, *, present: bool) -> int:
        if not present:
            return self.limits.default_lease_ms
        ms = duration_ms(value)
        if not MIN_LEASE_MS <= ms <= self.limits.max_lease_ms:
            self.fail(field, f"between 100ms and {self.limits.max_lease_ms / 1000:g}s")
        return ms

    def version(self, value: int, field: str) -> int:
        if value < 0:
            self.fail(field, "must not be negative")
        return value

    def page_size(self, value: int) -> int:
        if value == 0:
            return self.limits.default_page_size
        if not 1 <= value <= self.limits.max_page_size:
            self.fail("page_size", f"between 0 and {self.limits.max_page_size}")
        return value
