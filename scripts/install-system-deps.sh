#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages qconnect's tests drive for real:
# speech synthesis, audio tools, an MQTT broker, the interop softphones and a browser.
# As root it runs apt-get; otherwise it names what is missing and exits non-zero.
set -euo pipefail

packages=(espeak-ng sox mosquitto mosquitto-clients linphone-cli baresip chromium ffmpeg)
# command that proves each package is present (same order as packages)
probes=(espeak-ng sox mosquitto mosquitto_pub linphonec baresip chromium ffmpeg)

missing=()
for i in "${!packages[@]}"; do
    command -v "${probes[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
# python3 -m venv needs Debian's python3-venv (ensurepip) where Python comes from apt
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "qconnect: missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the broker is started by the tests themselves, never as a system service
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
echo "qconnect: installed ${missing[*]}"
