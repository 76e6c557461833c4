"""Flows of the built-in demo lab (``flows_dir`` of demo_lab.yaml); a package so the JSON installs."""
