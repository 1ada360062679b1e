"""The error the MeasurementSet writer raises for everything a user can cause."""

from __future__ import annotations

from services.common.errors import ServiceError


class MsWriteError(ServiceError):
    """A MeasurementSet cannot be written as asked.

    The output exists or cannot be written, the data model does not match the stream,
    the disk is full, or a block does not fit the stream. The message is one line that
    names the path, key or value involved.
    """
