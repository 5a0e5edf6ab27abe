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


def test_the_workers_share_a_socket_unless_each_is_asked_for(monkeypatch):
    monkeypatch.delenv("WEB_REUSE_PORT", raising=False)
    assert procfile_config(monkeypatch, WEB_CONCURRENCY="2").reuse_port is False
    assert procfile_config(monkeypatch, WEB_REUSE_PORT="on").reuse_port is True
    alone = procfile_config(monkeypatch, WEB_CONCURRENCY="1", WEB_REUSE_PORT="on")
    assert alone.reuse_port is False


class _Arbiter:
    """What gunicorn's ``on_starting`` hook is handed: the config and a logger."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.warnings: list[str] = []
        self.log = self

    def warning(self, message: str, *args) -> None:
        self.warnings.append(message % args)


def on_starting(monkeypatch, migrate_req: str | None, tmp_path, **options) -> _Arbiter:
    """gunicorn.conf.py's hook run as the arbiter runs it, on a config with ``options``
    (as ``GUNICORN_CMD_ARGS`` would set them) and ``tcp_migrate_req`` reading ``migrate_req``
    (None: the file is missing)."""
    hooks = runpy.run_path(str(CONF))
    cfg = procfile_config(monkeypatch, WEB_CONCURRENCY="2", WEB_REUSE_PORT="on")
    for name, value in options.items():
        cfg.set(name, value)
    setting = tmp_path / "tcp_migrate_req"
    if migrate_req is not None:
        setting.write_text(migrate_req + "\n")
    arbiter = _Arbiter(cfg)
    hooks["on_starting"].__globals__["MIGRATE_REQ"] = str(setting)
    hooks["on_starting"](arbiter)
    return arbiter


def test_a_socket_each_is_kept_quietly_where_the_kernel_migrates(monkeypatch, tmp_path):
    arbiter = on_starting(monkeypatch, "1", tmp_path)
    assert arbiter.cfg.reuse_port is True and arbiter.warnings == []


def test_a_socket_each_warns_where_queued_connections_would_be_reset(monkeypatch, tmp_path):
    for reading in ("0", None):
        arbiter = on_starting(monkeypatch, reading, tmp_path)
        assert arbiter.cfg.reuse_port is True
        [warning] = arbiter.warnings
        assert "tcp_migrate_req is not 1" in warning


def test_max_requests_keeps_the_shared_socket(monkeypatch, tmp_path):
    # Workers sharing the load reach max_requests together: no socket would be left.
    arbiter = on_starting(monkeypatch, "1", tmp_path, max_requests=400)
    assert arbiter.cfg.reuse_port is False
    assert "max_requests" in arbiter.warnings[0]


def test_requests_are_parsed_by_gunicorns_c_parser(monkeypatch):
    # gunicorn_h1c is a dependency; gunicorn picks it ("auto") unless a compatibility flag
    # it cannot honour is set. A missing or too-old extension shows here, not as a quietly
    # slower webhook. (gunicorn's own check, private: gunicorn.http.message.)
    cfg = procfile_config(monkeypatch)
    assert cfg.http_parser == "auto"
    assert message._check_fast_parser(cfg) is True
