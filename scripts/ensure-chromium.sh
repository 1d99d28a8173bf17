#!/bin/sh
# The front page's browser tests (tests/test_router_page.py) drive Debian's chromium with
# Playwright (no browser download). Install it only where it is missing, as `make test` builds
# llama-server only once; needs root (or sudo) and apt the first time.
set -e
[ -x /usr/bin/chromium ] && exit 0
echo "installing chromium (Debian package) for the front page's browser tests" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
