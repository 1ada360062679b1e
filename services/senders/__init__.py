"""Senders that emit the real wire formats: emu-send (CBF-SDP ICD), beam-send (SKA PST beams)."""
