"""gunicorn.conf.py as gunicorn reads it: the worker settings, the socket per worker, the
load table of a shared socket and the C HTTP parser."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.http import message
from gunicorn.workers.gthread import ThreadWorker

from sms_service.web import gunicorn_worker

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


def on_starting(
    monkeypatch, migrate_req: str | None, tmp_path, *, workers="2", reuse_port="on", **options
) -> _Arbiter:
    """gunicorn.conf.py's hook run as the arbiter runs it, on a config with ``options``
    (as ``GUNICORN_CMD_ARGS`` would set them) and ``tcp_migrate_req`` reading ``migrate_req``
    (None: the file is missing)."""
    monkeypatch.setattr(gunicorn_worker, "TABLE", None)  # what the hook makes, undone after
    hooks = runpy.run_path(str(CONF))
    cfg = procfile_config(monkeypatch, WEB_CONCURRENCY=workers, WEB_REUSE_PORT=reuse_port)
    for name, value in options.items():
        cfg.set(name, value)
    setting = tmp_path / "tcp_migrate_req"
    if migrate_req is not None:
        setting.write_text(migrate_req + "\n")
    arbiter = _Arbiter(cfg)
    hooks["on_starting"].__globals__["MIGRATE_REQ"] = str(setting)
    hooks["on_starting"](arbiter)
    arbiter.hooks = hooks
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


def test_on_a_shared_socket_the_arbiter_hands_out_slots_of_the_load_table(monkeypatch, tmp_path):
    arbiter = on_starting(monkeypatch, "1", tmp_path, reuse_port="off")
    assert isinstance(gunicorn_worker.TABLE, gunicorn_worker.LoadTable)
    pre_fork, child_exit = arbiter.hooks["pre_fork"], arbiter.hooks["child_exit"]
    workers = [SimpleNamespace(table_slot=None) for _ in range(3)]
    for worker in workers:
        pre_fork(arbiter, worker)
    assert [worker.table_slot for worker in workers] == [0, 1, 2]
    child_exit(arbiter, workers[1])  # exited, or killed
    successor = SimpleNamespace(table_slot=None)
    pre_fork(arbiter, successor)
    assert successor.table_slot == 1
    # worker_exit runs in the exiting worker (which frees nothing: its copy of the
    # arbiter's record is stale) and in the arbiter for a worker found already gone.
    worker_exit = arbiter.hooks["worker_exit"]
    arbiter.pid = os.getpid() + 1  # as seen from a worker
    worker_exit(arbiter, workers[0])
    arbiter.pid = os.getpid()
    worker_exit(arbiter, workers[2])
    later = [SimpleNamespace(table_slot=None) for _ in range(2)]
    for worker in later:
        pre_fork(arbiter, worker)
    assert [worker.table_slot for worker in later] == [2, 3]


def test_one_worker_or_a_socket_each_has_no_load_table(monkeypatch, tmp_path):
    on_starting(monkeypatch, "1", tmp_path, workers="1", reuse_port="off")
    assert gunicorn_worker.TABLE is None
    on_starting(monkeypatch, "1", tmp_path)  # a socket each
    assert gunicorn_worker.TABLE is None
    on_starting(monkeypatch, "1", tmp_path, max_requests=400)  # back to the shared socket
    assert gunicorn_worker.TABLE is not None


def test_requests_are_parsed_by_gunicorns_c_parser(monkeypatch):
    # gunicorn_h1c is a dependency; gunicorn picks it ("auto") unless a compatibility flag
    # it cannot honour is set. A missing or too-old extension shows here, not as a quietly
    # slower webhook. (gunicorn's own check, private: gunicorn.http.message.)
    cfg = procfile_config(monkeypatch)
    assert cfg.http_parser == "auto"
    assert message._check_fast_parser(cfg) is True
