#!/usr/bin/env bash
# Install a provisioned gateway on a Raspberry Pi OS / Debian street cabinet. Safe to run again (idempotent).
#
#   sudo deploy/install-gateway.sh BUNDLE        # BUNDLE = the folder `dozor provision gateway GW ...` wrote
#
# It creates the service user dozor-gw (groups dialout, audio), the virtualenv /opt/dozor/venv with
# dozor[gateway] (+ [microphone] when the config has a microphone), /etc/dozor/gateway/ (gateway.toml, ca.crt,
# client.crt 0644; client.key 0600 root, handed to the service by systemd's LoadCredential=), the state dir
# /var/lib/dozor-gateway (0700, dozor-gw) with the gateway's identity key (0600; its public half is enrolled
# at the hub by `dozor provision gateway`) and the hardened unit dozor-gateway.service, then enables it.
# An existing /etc/dozor/gateway/gateway.toml is kept (a technician may have added devices); FORCE=1 replaces it.
#
# Environment: DOZOR_ROOT=/ (install into another root, e.g. an SD-card image or a test), DOZOR_SRC (the dozor
# source tree; default: this script's repository), DOZOR_PIP_ARGS (extra pip arguments, e.g. --no-index).
set -euo pipefail

BUNDLE=${1:?usage: install-gateway.sh BUNDLE (the folder written by dozor provision gateway)}
ROOT=${DOZOR_ROOT:-/}
ROOT=${ROOT%/}
SRC=${DOZOR_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
USER_NAME=dozor-gw
ETC=$ROOT/etc/dozor/gateway
VENV=$ROOT/opt/dozor/venv
STATE=$ROOT/var/lib/dozor-gateway
UNIT=$ROOT/etc/systemd/system/dozor-gateway.service
say() { echo "install-gateway: $*"; }

for f in gateway.toml ca.crt client.crt client.key identity-key; do
  [ -f "$BUNDLE/$f" ] || { echo "install-gateway: $BUNDLE/$f is missing: is this a provisioned bundle?" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "install-gateway: run as root (sudo)" >&2; exit 2; }

# 1. the service user (system account, no login, no home of its own)
prefix=(); [ -n "$ROOT" ] && prefix=(--prefix "$ROOT")
if ! grep -q "^$USER_NAME:" "$ROOT/etc/passwd"; then
  useradd "${prefix[@]}" --system --user-group --no-create-home --home-dir /var/lib/dozor-gateway \
          --shell /usr/sbin/nologin "$USER_NAME"
  say "created user $USER_NAME"
fi
for g in dialout audio; do
  if grep -q "^$g:" "$ROOT/etc/group" && ! grep -Eq "^$g:[^:]*:[^:]*:(.*,)?$USER_NAME(,|$)" "$ROOT/etc/group"; then
    usermod "${prefix[@]}" -a -G "$g" "$USER_NAME"
    say "added $USER_NAME to $g"
  fi
done
uid=$(awk -F: -v u="$USER_NAME" '$1 == u {print $3}' "$ROOT/etc/passwd")
gid=$(awk -F: -v u="$USER_NAME" '$1 == u {print $4}' "$ROOT/etc/passwd")

# 2. config and certificates (the key stays root's: systemd passes a private copy to the service)
install -d -m 0755 "$ROOT/etc/dozor" "$ETC"
if [ ! -f "$ETC/gateway.toml" ] || [ "${FORCE:-0}" = 1 ]; then
  install -m 0644 "$BUNDLE/gateway.toml" "$ETC/gateway.toml"
else
  cmp -s "$BUNDLE/gateway.toml" "$ETC/gateway.toml" || say "kept the existing $ETC/gateway.toml (FORCE=1 replaces it)"
fi
for f in ca.crt client.crt; do cmp -s "$BUNDLE/$f" "$ETC/$f" || install -m 0644 "$BUNDLE/$f" "$ETC/$f"; done
cmp -s "$BUNDLE/client.key" "$ETC/client.key" || install -m 0600 -o 0 -g 0 "$BUNDLE/client.key" "$ETC/client.key"
chmod 0600 "$ETC/client.key"

# 3. the virtualenv: dozor[gateway], plus the noise DSP only when a microphone is configured
extras=gateway
grep -Eq '^\s*kind\s*=\s*"microphone"' "$ETC/gateway.toml" && extras=gateway,microphone
stamp="$VENV/.dozor-installed"
want="$extras $(sha256sum "$SRC/pyproject.toml" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q ${DOZOR_PIP_ARGS:-} "$SRC[$extras]"
  echo "$want" > "$stamp"
  say "installed dozor[$extras] into $VENV"
fi

# 4. the state dir (also created by systemd's StateDirectory=) with the identity key enrolled at the hub
install -d -m 0700 -o "$uid" -g "$gid" "$STATE"
cmp -s "$BUNDLE/identity-key" "$STATE/identity-key" \
  || install -m 0600 -o "$uid" -g "$gid" "$BUNDLE/identity-key" "$STATE/identity-key"

# 5. the unit
cmp -s "$SRC/deploy/systemd/dozor-gateway.service" "$UNIT" 2>/dev/null || {
  install -d -m 0755 "$(dirname "$UNIT")"
  install -m 0644 "$SRC/deploy/systemd/dozor-gateway.service" "$UNIT"
  say "installed $UNIT"
}

# 6. check the config as the service will read it, then start (only on the live system)
"$VENV/bin/dozor" gateway check-config "$ETC/gateway.toml"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now dozor-gateway.service
  say "dozor-gateway.service enabled and started; follow it with: journalctl -fu dozor-gateway"
else
  say "installed into ${ROOT:-/} (not started: no running systemd there)"
fi
