#!/usr/bin/env bash
# Removes what scripts/install.sh installed. Keeps the replica (/var/lib/ehr-sync), the
# configuration and the key (/etc/ehr-sync) and the user, unless --purge. Safe to run again.
#
# Usage: scripts/uninstall.sh [--root DIR] [--purge]
set -euo pipefail

prog=uninstall.sh
usage() {
    cat <<'EOF'
Usage: scripts/uninstall.sh [--root DIR] [--purge]

Stops and disables ehr-syncd (when systemd runs here), removes the binaries, the unit and its
drop-ins and the docs. The replica (/var/lib/ehr-sync), the configuration and the key
(/etc/ehr-sync), the user ehr-sync and the groups stay, so a reinstall picks them up.

  --root DIR   uninstall from the system tree at DIR (systemd is not contacted)
  --purge      also delete the replica, the configuration, THE KEY, the user and the groups
  -h, --help   this text
EOF
}
die() {
    echo "$prog: error: $*" >&2
    exit 1
}
note() { echo "  $*"; }

ROOT=""
purge=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root)
            [ $# -ge 2 ] || die "--root needs a directory"
            ROOT=$2
            shift 2
            ;;
        --root=*)
            ROOT=${1#--root=}
            shift
            ;;
        --purge)
            purge=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root; try: sudo $0"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd -- "$ROOT" && pwd -P)
    [ "$ROOT" != / ] || ROOT=""
fi

unit=ehr-syncd.service
unitdir=$ROOT/etc/systemd/system
account_opts=()
[ -z "$ROOT" ] || account_opts=(--root "$ROOT")
live_systemd=0
[ -n "$ROOT" ] || [ ! -d /run/systemd/system ] || live_systemd=1

remove() { # PATH...: deletes each that exists and says so
    local p
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            rm -rf -- "$p"
            note "removed    ${p#"$ROOT"}"
        fi
    done
}
have_group() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/group"; else getent group "$1" >/dev/null; fi
}
have_user() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/passwd"; else getent passwd "$1" >/dev/null; fi
}

echo "== uninstalling ehr-sync${ROOT:+ from $ROOT}"
if [ "$live_systemd" -eq 1 ]; then
    if systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl stop "$unit"
        note "stopped    $unit"
    fi
    if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
        systemctl disable --quiet "$unit"
        note "disabled   $unit"
    fi
elif [ -f "$unitdir/$unit" ] && command -v systemctl >/dev/null 2>&1; then
    # No running systemd to talk to (--root, container): disable offline, in the tree.
    systemctl --root="${ROOT:-/}" disable "$unit" 2>&1 | sed 's/^/  /' || true
fi
# Whatever enablement links remain (offline disable unavailable or incomplete).
if [ -d "$unitdir" ]; then
    while IFS= read -r -d '' link; do
        remove "$link"
    done < <(find "$unitdir" -mindepth 2 -maxdepth 2 -name "$unit" -type l \
        \( -path '*.wants/*' -o -path '*.requires/*' \) -print0)
fi

remove "$ROOT/usr/local/bin/ehr-syncd" "$ROOT/usr/local/bin/syncctl" \
    "$unitdir/$unit" "$unitdir/$unit.d/credential.conf" "$ROOT/usr/local/share/doc/ehr-sync"
# Only our drop-in goes: an operator's `systemctl edit` override stays (and is said so).
if [ -d "$unitdir/$unit.d" ]; then
    if rmdir "$unitdir/$unit.d" 2>/dev/null; then
        note "removed    ${unitdir#"$ROOT"}/$unit.d"
    else
        note "kept       ${unitdir#"$ROOT"}/$unit.d (operator overrides)"
    fi
fi

if [ "$live_systemd" -eq 1 ]; then
    systemctl daemon-reload
    systemctl reset-failed "$unit" 2>/dev/null || true
fi

if [ "$purge" -eq 0 ]; then
    cat <<EOF

ehr-sync is uninstalled${ROOT:+ from $ROOT}. Kept, so that a reinstall picks them up:
  /var/lib/ehr-sync   the encrypted replica
  /etc/ehr-sync       the configuration and the replica's key
  user ehr-sync, groups ehr-sync, ehr-sync-staff and ehr-sync-admin
Delete them too with: scripts/uninstall.sh${ROOT:+ --root $ROOT} --purge
EOF
    exit 0
fi

cat >&2 <<'EOF'
uninstall.sh: WARNING: --purge deletes the encrypted replica (/var/lib/ehr-sync), the
configuration and the replica's KEY (/etc/ehr-sync), the user ehr-sync and the groups ehr-sync
and ehr-sync-staff. Without the key, no backup of the replica can ever be read again.
EOF
remove "$ROOT/var/lib/ehr-sync" "$ROOT/run/ehr-sync" "$ROOT/etc/ehr-sync"
if have_user ehr-sync; then
    userdel "${account_opts[@]}" ehr-sync
    note "deleted    user ehr-sync"
fi
for g in ehr-sync ehr-sync-staff ehr-sync-admin; do
    if have_group "$g"; then
        groupdel "${account_opts[@]}" "$g"
        note "deleted    group $g"
    fi
done
echo
echo "ehr-sync is purged${ROOT:+ from $ROOT}."
