"""The access logger writes the line gunicorn's own logger wrote with the old format."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from sms_service.web.access_log import AccessLogger

OLD_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def line(logger_class, resp, environ, took: timedelta, *, enabled: bool = True) -> list[str]:
    cfg = Config()
    if enabled:
        cfg.set("accesslog", "-")
    cfg.set("access_log_format", OLD_FORMAT)
    logger = logger_class(cfg)
    lines = Lines()
    logger.access_log.addHandler(lines)
    try:
        logger.access(resp, SimpleNamespace(headers=[("Host", "x")]), environ, took)
    finally:
        logger.access_log.removeHandler(lines)
    return lines.lines


@pytest.mark.parametrize(
    "status, sent, path, took",
    [
        ("200 OK", 250, "/sms/inbound", timedelta(microseconds=3999)),
        ("403 FORBIDDEN", 0, "/sms/inbound?x=1", timedelta(seconds=2, microseconds=17)),
        ("302 FOUND", None, "/p/HK64", timedelta(0)),
        (429, 12, "/api/v1/campaigns", timedelta(milliseconds=15)),
    ],
)
def test_the_line_is_the_one_gunicorns_logger_wrote(status, sent, path, took):
    resp = SimpleNamespace(status=status, sent=sent, headers=[("Content-Type", "text/html")])
    environ = {
        "REMOTE_ADDR": "203.0.113.9", "REQUEST_METHOD": "POST", "RAW_URI": path,
        "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": path.partition("?")[0],
    }  # fmt: skip
    ours = line(AccessLogger, resp, environ, took)
    assert ours == line(Logger, resp, environ, took)
    assert len(ours) == 1 and path in ours[0]


def test_nothing_is_written_with_the_access_log_off():
    resp = SimpleNamespace(status="200 OK", sent=1, headers=[])
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1"}
    assert line(AccessLogger, resp, environ, timedelta(0), enabled=False) == []
