"""Checking a listening port before anything claims it in a banner."""

from __future__ import annotations

import errno
import socket

import click


def ensure_port_free(host: str, port: int, option: str = "--port") -> None:
    """Exit with one line if ``host:port`` cannot be listened on (in use, not allowed).

    The check binds and closes at once: another process could still take the port in the
    moment before the server binds it, which then fails with its own error.
    """
    if port == 0:
        return  # the system picks a free one
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is in use: stop what listens there or pass "
                    f"another {option}"
                ) from exc
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
