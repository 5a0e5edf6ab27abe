"""gunicorn.conf.py as gunicorn reads it: the worker settings and the C HTTP parser."""

from __future__ import annotations

import runpy
from pathlib import Path

from gunicorn.config import Config
from gunicorn.http import message

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
    assert (cfg.workers, cfg.threads, cfg.worker_class_str) == (3, 5, "gthread")
    assert cfg.keepalive == 15


def test_requests_are_parsed_by_gunicorns_c_parser(monkeypatch):
    # gunicorn_h1c is a dependency; gunicorn picks it ("auto") unless a compatibility flag
    # it cannot honour is set. A missing or too-old extension shows here, not as a quietly
    # slower webhook. (gunicorn's own check, private: gunicorn.http.message.)
    cfg = procfile_config(monkeypatch)
    assert cfg.http_parser == "auto"
    assert message._check_fast_parser(cfg) is True
