"""Phone numbers never reach the logs in clear: every log record, from any library
(werkzeug's and gunicorn's request lines included), has its E.164 numbers masked when it
is created. Code masks numbers itself too (:func:`~sms_service.domain.phones.mask`); this
is the net under it, for request URLs and messages we do not write.
"""

from __future__ import annotations

import logging
from typing import Any

from sms_service.domain.phones import mask_numbers_in

_installed = False


def install() -> None:
    """Wrap the process's log record factory (once) so each record's message is masked."""
    global _installed  # noqa: PLW0603 - one factory per process
    if _installed:
        return
    original = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = original(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            return record
        masked = mask_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
