#!/usr/bin/env bash
# Runs before the tests (see RedisHotSwap.Tests.csproj): finds redis-server, or installs Debian's package when this
# user may (root, apt-get); otherwise prints one line naming what to install and exits 1.
set -uo pipefail
if [ -n "${REDIS_SERVER:-}" ] || command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$EUID" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is not installed: installing Debian's package redis-server (apt-get install -y redis-server)."
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; then
    exit 0
  fi
  echo "Installing redis-server failed: run 'apt-get update && apt-get install -y redis-server' to see why, then run the tests again." >&2
  exit 1
fi
echo "redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install -y redis-server) or set REDIS_SERVER to its path, then run the tests again." >&2
exit 1
