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

# Installing must not start a package's service (docker.io's dockerd, docker-registry, ...): the
# tests run daemons of their own and must leave none of the system's behind. A postinst starts
# its service through invoke-rc.d (sysvinit) or deb-systemd-invoke (systemd), and both ask
# /usr/sbin/policy-rc.d first; so for the install, one that denies every action is put there,
# and whatever was there is put back afterwards (Debian's container images ship one that denies
# too; on a machine without an init that has a runlevel, invoke-rc.d denies by itself). Runs of
# this script take turns, so that each puts back the original; what a killed run left is
# recognised by the marker and undone first.
policy=/usr/sbin/policy-rc.d
saved=$policy.restart-process-saved
marker='# written by restart-process-webhook hack/ensure-packages.sh for the length of an install'
restore_policy() { if [ -e "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
mkdir -p /run/lock
exec {turn}>/run/lock/restart-process-ensure-packages.lock
flock -w 600 "$turn"
if [ -f "$policy" ] && grep -qxF "$marker" "$policy"; then restore_policy; fi
if [ -e "$policy" ]; then cp -p "$policy" "$saved"; fi
trap restore_policy EXIT
printf '#!/bin/sh\n%s\nexit 101\n' "$marker" > "$policy.new"
chmod 0755 "$policy.new"
mv -f "$policy.new" "$policy"

apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
