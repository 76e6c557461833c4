"""Interop tests: real softphones (baresip, linphonec) on loopback."""
