"""Status callbacks: what Twilio POSTs to a message's StatusCallback URL as it moves on.

Each message gets one task that posts its statuses in order (queued → sent → final), each
at the time the message's timeline says, signed with ``X-Twilio-Signature`` exactly as
Twilio signs (HMAC-SHA1 of the URL and the sorted form fields, base64). A failed POST is
counted and logged; like Twilio, the simulator does not retry it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

import aiohttp

from sms_service.devtools.carrier_sim.config import CallbackMode
from sms_service.devtools.carrier_sim.store import SimMessage
from sms_service.devtools.carrier_sim.twilio_shapes import API_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable

    from twilio.request_validator import RequestValidator

    from sms_service.devtools.carrier_sim.config import SimConfig
    from sms_service.devtools.carrier_sim.store import Stats

log = logging.getLogger(__name__)


def status_params(message: SimMessage, status: str, *, account_sid: str, sender: str) -> dict:
    """The form fields of one status callback."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "From": sender,
        "MessageSid": message.sid,
        "MessageStatus": status,
        "SmsSid": message.sid,
        "SmsStatus": status,
        "To": message.to,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if status in ("undelivered", "failed") and message.error_code:
        params["ErrorCode"] = str(message.error_code)
    if status == "delivered":
        params["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime(message.final_at))
    return params


def stages(message: SimMessage, first_at: float, mode: CallbackMode) -> list[tuple[str, float]]:
    """(status, Unix time) of each callback to post for ``message`` under ``mode``."""
    final = (message.final_status, message.final_at)
    if mode is CallbackMode.ALL:
        return [("queued", first_at), ("sent", message.sent_at), final]
    if mode is CallbackMode.FINAL:
        return [final]
    return []


class CallbackSender:
    """Posts status callbacks through one keep-alive ``aiohttp.ClientSession``."""

    def __init__(
        self,
        config: SimConfig,
        *,
        validator: RequestValidator,
        stats: Callable[[], Stats],
        sender_of: Callable[[SimMessage], str],
    ) -> None:
        # The simulator passes what callbacks need rather than itself, so this module does
        # not import the simulator that imports it; ``stats`` is read at post time because
        # ``DELETE /sim/messages`` replaces the counters.
        self.config = config
        self.validator = validator
        self.stats = stats
        self.sender_of = sender_of
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        """Open the shared session (on the application's event loop)."""
        connector = aiohttp.TCPConnector(limit=self.config.callback_concurrency)
        timeout = aiohttp.ClientTimeout(total=self.config.callback_timeout_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        self._slots = asyncio.Semaphore(self.config.callback_concurrency)

    async def close(self) -> None:
        """Drop pending callbacks and close the session."""
        await self.cancel_pending()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def cancel_pending(self) -> None:
        """Cancel every callback not yet posted (``DELETE /sim/messages`` starts afresh)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def pending(self) -> int:
        """Messages with callbacks still to post."""
        return len(self.tasks)

    def schedule(self, message: SimMessage, *, first_at: float) -> None:
        """Post ``message``'s callbacks from ``first_at`` on, in order."""
        if not message.status_callback:
            return
        plan = stages(message, first_at, self.config.callbacks)
        if not plan:
            return
        task = asyncio.get_running_loop().create_task(self._run(message, plan))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, message: SimMessage, plan: list[tuple[str, float]]) -> None:
        for status, at in plan:
            wait = at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.post(message, status)

    async def post(self, message: SimMessage, status: str) -> bool:
        """POST one signed callback; True when the receiver answered 2xx/3xx."""
        assert self.session is not None and self._slots is not None, "start() first"
        url = message.status_callback or ""
        params = status_params(
            message,
            status,
            account_sid=self.config.account_sid,
            sender=self.sender_of(message),
        )
        headers = {
            "X-Twilio-Signature": self.validator.compute_signature(url, params),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        stats = self.stats()
        try:
            async with self._slots, self.session.post(url, data=params, headers=headers) as resp:
                await resp.read()
                ok = resp.status < 400
                if not ok:
                    log.warning("status callback %s %s: HTTP %s", message.sid, status, resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("status callback %s %s failed: %r", message.sid, status, exc)
            ok = False
        if ok:
            stats.callbacks_sent += 1
        else:
            stats.callbacks_failed += 1
        return ok
