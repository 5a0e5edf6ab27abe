"""Failed jobs keep their traceback in Redis (``job.exc_info``, shown by dashboards and
``rq info``), written by RQ, not by logging, so the log record factory never sees it. This
mixin masks the phone numbers in it before RQ stores it, as every log line is masked."""

from __future__ import annotations

from sms_service.domain.phones import mask_numbers_in


class MaskedFailures:
    """Mixin for RQ workers: the failure text RQ stores for a job has its numbers masked."""

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="",
                           execution=None):  # fmt: skip
        """RQ's API: record the failure, with every E.164 number in its text masked."""
        return super().handle_job_failure(  # type: ignore[misc]
            job, queue, started_job_registry=started_job_registry,
            exc_string=mask_numbers_in(exc_string or ""), execution=execution,
        )  # fmt: skip
