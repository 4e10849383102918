"""TgGod session service: encrypted, locked, expiring login state in Redis over gRPC."""
