"""Whether a Redis server answers: how the web app and ``sms-service dev`` pick a backend."""

from __future__ import annotations

import redis


def redis_answers(url: str, *, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url`` within ``timeout`` seconds."""
    try:
        conn = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(conn.ping())
        finally:
            conn.close()
    except (redis.RedisError, OSError):
        return False
