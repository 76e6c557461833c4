"""The default flows, shipped as Flow Language JSON (a package so the files install)."""
