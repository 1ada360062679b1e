"""svc-spead-send: a ring pair sent onwards as SPEAD streams (docs/spead-send.md)."""
