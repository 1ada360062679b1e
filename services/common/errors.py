"""The error base of the services, apart from the ring library's (``ringbuf.errors``).

A :class:`ServiceError` is something a user of a service can cause (a bad config key, an
output that cannot be written, a stream that does not fit the configuration); its message is
one line naming the key, path or value involved, fit to print as is. Commands turn
:data:`USER_ERRORS` into that one line and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

from ringbuf.errors import RingBufError


class ServiceError(Exception):
    """A problem a user of a service can cause; the message is one line naming its cause."""


#: What a command reports as one line (no traceback): the ring library's errors and ours.
USER_ERRORS: tuple[type[Exception], ...] = (RingBufError, ServiceError)
