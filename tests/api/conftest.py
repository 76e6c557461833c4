"""Fixtures for the agent interface tests (helpers in support.py)."""

from tests.api.support import lab, mosquitto

__all__ = ["lab", "mosquitto"]
