"""gunicorn.conf.py as gunicorn reads it: the worker settings, the socket per worker and the C
HTTP parser."""

from __future__ import annotations

import runpy
from pathlib import Path

from gunicorn.config import Config
from gunicorn.http import message
from gunicorn.workers.gthread import ThreadWorker

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def procfile_config(monkeypatch, **env: str) -> Config:
    """A gunicorn Config loaded from gunicorn.conf.py, as ``gunicorn -c`` loads it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = Config()
    for name, value in runpy.run_path(str(CONF)).items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_workers_and_threads_come_from_the_settings(monkeypatch):
    cfg = procfile_config(monkeypatch, WEB_CONCURRENCY="3", WEB_THREADS="5")
    assert (cfg.workers, cfg.threads) == (3, 5)
    assert cfg.keepalive == 15
    # gthread, closing its own socket when it stops (tests/e2e/test_gunicorn_workers.py).
    assert issubclass(cfg.worker_class, ThreadWorker)
    assert cfg.worker_class.__module__ == "sms_service.web.gunicorn_worker"


def test_each_worker_has_its_own_socket_unless_turned_off_or_alone(monkeypatch):
    assert procfile_config(monkeypatch).reuse_port is True
    assert procfile_config(monkeypatch, WEB_REUSE_PORT="off").reuse_port is False
    alone = procfile_config(monkeypatch, WEB_CONCURRENCY="1", WEB_REUSE_PORT="on")
    assert alone.reuse_port is False


def test_requests_are_parsed_by_gunicorns_c_parser(monkeypatch):
    # gunicorn_h1c is a dependency; gunicorn picks it ("auto") unless a compatibility flag
    # it cannot honour is set. A missing or too-old extension shows here, not as a quietly
    # slower webhook. (gunicorn's own check, private: gunicorn.http.message.)
    cfg = procfile_config(monkeypatch)
    assert cfg.http_parser == "auto"
    assert message._check_fast_parser(cfg) is True
