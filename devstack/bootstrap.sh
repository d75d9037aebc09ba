#!/usr/bin/env bash
# Installs what the stack needs on Debian: system packages (as root), then a
# virtualenv with the pinned dependencies. Usage: devstack/bootstrap.sh [test|dev]
# (test adds the browser the dashboard's test drives; dev adds wrk for bench/).
set -euo pipefail
cd "$(dirname "$0")/.."

extra=${1:-}
packages=(postgresql pgbouncer python3-venv python3-dev make)
[ "$extra" = test ] && packages+=(chromium chromium-driver)
[ "$extra" = dev ] && packages+=(wrk chromium chromium-driver)
# As root the servers and the web server run as unprivileged accounts, which
# devstack lets through private folders such as /root with ACLs (setfacl).
[ "$(id -u)" -eq 0 ] && packages+=(acl)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}" >&2
    echo "Install them, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing ${missing[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # Debian starts a system PostgreSQL and PgBouncer on install where an init system
  # runs; the stack runs its own on other ports, so they can stay or go.
fi

# Debian's python3, not a per-user one: when started by root the servers run as an
# unprivileged account, which must be able to run the virtualenv's interpreter.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ] \
   || [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$python")" ]; then
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi
