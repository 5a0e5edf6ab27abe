"""One Redis database number for each test run, so runs side by side never share keys.

``pytest_configure`` leases a free number (1-15, less the benchmarks' 8 and 9) with a key
in db 0 holding the run's pid, and puts it in the environment (``SMS_TEST_REDIS_DB``),
where worker processes the tests start read it too. Each pytest-xdist worker is a run of
its own: it leases another number rather than share its controller's
(:func:`lease_for_worker`). The lease is given back when the run ends; one whose run was
killed expires on its own, or is taken over at once when every number is leased and its
pid is gone from this machine. Nothing leases at import: test modules ask
:func:`redis_url` when they need it. Tests flush the database around themselves.
"""

from __future__ import annotations

import os

import redis

HOST, PORT = "127.0.0.1", 6379
ENV = "SMS_TEST_REDIS_DB"
LEASED_BY = "SMS_TEST_REDIS_DB_LEASED_BY"  # the pid that leased ENV's number (unset: pinned)
CANDIDATES = tuple(n for n in range(1, 16) if n not in (8, 9))  # 8, 9: bench/
LEASE_KEY = "sms_test:redis-db-lease:{}"
LEASE_SECONDS = 3 * 3600


def lease() -> int:
    """Lease a database number for this run (or return the one already leased)."""
    if os.environ.get(ENV):
        return int(os.environ[ENV])
    admin = redis.Redis(host=HOST, port=PORT, db=0)
    try:
        for take in (_take_free, _take_abandoned):
            for number in CANDIDATES:
                if take(admin, LEASE_KEY.format(number)):
                    _flush(number)  # a dead run's keys
                    os.environ[ENV] = str(number)
                    os.environ[LEASED_BY] = str(os.getpid())
                    return number
    finally:
        admin.close()
    raise RuntimeError(
        f"every Redis database in {CANDIDATES} is leased by another test run "
        f"(keys {LEASE_KEY.format('*')} in db 0; they expire after {LEASE_SECONDS} s)"
    )


def lease_for_worker() -> int:
    """A pytest-xdist worker's own number: the one its controller leased (inherited in the
    environment) would have the workers flush each other's keys. A number pinned by hand
    cannot be shared by several workers either."""
    leased_by = os.environ.get(LEASED_BY)
    if leased_by is None and os.environ.get(ENV):
        raise RuntimeError(
            f"{ENV} pins one Redis database, which parallel test workers cannot share: "
            "run them in one process (TEST_WORKERS=0) or unset it"
        )
    if leased_by != str(os.getpid()):
        os.environ.pop(ENV, None)
        os.environ.pop(LEASED_BY, None)
    return lease()


def _take_free(admin: redis.Redis, key: str) -> bool:
    return bool(admin.set(key, os.getpid(), nx=True, ex=LEASE_SECONDS))


# Replace the holder only if it is still the one found dead (another run may be faster).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def _take_abandoned(admin: redis.Redis, key: str) -> bool:
    holder = admin.get(key)
    if holder is None:
        return _take_free(admin, key)
    if _alive(int(holder)):
        return False
    return bool(admin.eval(_TAKE_OVER, 1, key, holder, os.getpid(), LEASE_SECONDS))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (test runs share one host and its Redis)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def release() -> None:
    """Give the lease back, if this process took it."""
    number = os.environ.pop(ENV, None)
    os.environ.pop(LEASED_BY, None)
    if number is None:
        return
    admin = redis.Redis(host=HOST, port=PORT, db=0)
    try:
        key = LEASE_KEY.format(number)
        if admin.get(key) == str(os.getpid()).encode():
            _flush(int(number))
            admin.delete(key)
    finally:
        admin.close()


def _flush(number: int) -> None:
    conn = redis.Redis(host=HOST, port=PORT, db=number)
    try:
        conn.flushdb()
    finally:
        conn.close()


def db_number() -> int:
    """This run's database number (leased in ``pytest_configure``); never leases itself."""
    number = os.environ.get(ENV)
    if not number:
        raise RuntimeError(f"no Redis database leased: {ENV} is unset (tests/conftest.py leases)")
    return int(number)


def redis_url() -> str:
    """This run's Redis URL."""
    return f"redis://{HOST}:{PORT}/{db_number()}"
