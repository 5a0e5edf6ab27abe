"""Phone numbers never reach the logs in clear: every log record, from any library
(werkzeug's and gunicorn's request lines included), has its E.164 numbers masked when it
is created, in its message *and* in its traceback. Code masks numbers itself too
(:func:`~sms_service.domain.phones.mask`); this is the net under it, for request URLs,
messages we do not write and exception texts such as PostgreSQL's
``Key (phone)=(+12025550123) already exists``.

Tracebacks that bypass logging (an uncaught exception in the CLI or in a thread) go
through :data:`sys.excepthook` / :data:`threading.excepthook`, which are masked too. The
engine additionally keeps SQL parameters out of exception texts
(``create_engine(hide_parameters=True)``, :func:`sms_service.db.make_engine`).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType
from typing import Any

from sms_service.domain.phones import mask_numbers_in

_installed = False
_plain = logging.Formatter()


def masked_traceback(
    kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
) -> str:
    """The traceback Python would print, with every phone number masked."""
    return mask_numbers_in("".join(traceback.format_exception(kind, value, tb)))


def install() -> None:
    """Wrap the process's log record factory and exception hooks (once) so that messages
    and tracebacks are masked wherever they are printed."""
    global _installed  # one factory per process
    if _installed:
        return
    original = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report
            return record
        masked = mask_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        # Formatters print exc_text when it is set instead of formatting exc_info again, so
        # the masked text is what every handler shows.
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = mask_numbers_in(_plain.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask_numbers_in(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)

    def excepthook(kind, value, tb) -> None:
        sys.stderr.write(masked_traceback(kind, value, tb))

    def thread_excepthook(hook_args: threading.ExceptHookArgs) -> None:
        if hook_args.exc_type is SystemExit:
            return
        name = hook_args.thread.name if hook_args.thread else "?"
        sys.stderr.write(f"Exception in thread {name}:\n")
        sys.stderr.write(
            masked_traceback(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback)
        )

    # Only in place of Python's own hooks: a debugger's or a test runner's stays.
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = excepthook
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = thread_excepthook
    _installed = True
