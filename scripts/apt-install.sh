#!/usr/bin/env bash
# Installs Debian packages for the tests: `apt-get update`, then `apt-get install` of the
# packages named as arguments, with a policy-rc.d that keeps their post-install from
# starting system services (redis on :6379, nginx on :80, prometheus on :9090): the tests
# start their own on free ports. Runs as root (CI is), or with sudo.
set -euo pipefail

[ "$#" -gt 0 ] || exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy="yes"
fi
cleanup() {
    if [ -n "$created_policy" ]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
