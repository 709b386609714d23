#!/usr/bin/env bash
# Install the Debian packages the build and tests need, when their command is missing.
# Usage: hack/ensure-packages.sh COMMAND:PACKAGE...   (COMMAND may be an absolute path to a file)
# Without root (or apt-get) it says what is missing and lets the caller fall back or fail.
set -euo pipefail

missing=()
# COMMAND is a command name, or an absolute path that must exist (a header, a library).
present() { if [[ $1 == /* ]]; then [ -e "$1" ]; else command -v "$1" >/dev/null 2>&1; fi; }
for pair in "$@"; do
  present "${pair%%:*}" || missing+=("${pair#*:}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-packages: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "ensure-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (a parallel make, a helper) rather than failing on its lock.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
