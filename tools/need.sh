#!/usr/bin/env bash
# tools/need.sh COMMAND PACKAGE: make sure COMMAND exists, installing the Debian PACKAGE that provides it
# (apt-get as root, else through sudo). On failure, one line naming the command that fixes it, exit 1.
set -uo pipefail
command="$1" package="$2"
command -v "$command" >/dev/null && exit 0
echo "make: $command not found; installing $package" >&2
if [[ "$(id -u)" = 0 ]]; then
  apt-get install -y -q "$package" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$package" >/dev/null 2>&1; }
elif command -v sudo >/dev/null; then
  sudo apt-get install -y -q "$package" >/dev/null 2>&1
else
  false
fi
command -v "$command" >/dev/null && exit 0
echo "make: could not install $package (run: apt-get install $package, as root)" >&2
exit 1
