"""RQ jobs. Workers import no Flask; jobs take ids or primitives and load their rows.

Queue names are shared by the Procfile, ``sms-service dev`` and the code that enqueues.
"""

QUEUE_BROADCASTS = "broadcasts"
QUEUE_DEFAULT = "default"
QUEUES = (QUEUE_BROADCASTS, QUEUE_DEFAULT)
