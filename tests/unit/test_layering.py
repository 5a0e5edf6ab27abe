"""Layering rules, checked in a fresh interpreter: pure domain modules import neither Flask,
the ORM nor Twilio; RQ workers never load Flask."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import sms_service.domain
import workers

DOMAIN = sorted(
    f"sms_service.domain.{m.name}" for m in pkgutil.iter_modules(sms_service.domain.__path__)
)


def loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_module_is_pure(module):
    loaded = loaded_after_import([module])
    assert not loaded & {"flask", "sqlalchemy", "sqlmodel", "twilio", "redis", "rq"}


def test_workers_do_not_load_flask():
    worker_modules = [
        f"workers.{m.name}" for m in pkgutil.iter_modules(workers.__path__) if m.name != "context"
    ]
    assert worker_modules
    assert "flask" not in loaded_after_import(worker_modules)
