#!/usr/bin/env bash
# Installs ehr-sync as a systemd service: ehr-syncd and syncctl, the system user, the unit,
# the example configuration (never over an existing one) and the replica's key (created once).
# Safe to run again: what exists is kept (user, key, configuration); binaries, unit and docs
# are refreshed only when they differ. Undo with scripts/uninstall.sh.
#
# Usage: scripts/install.sh [--root DIR] [--no-build] [--bin-dir DIR]
set -euo pipefail
umask 022

prog=install.sh
usage() {
    cat <<'EOF'
Usage: scripts/install.sh [--root DIR] [--no-build] [--bin-dir DIR]

Installs ehr-syncd and syncctl (/usr/local/bin), the system user and group ehr-sync, the group
ehr-sync-staff (staff allowed to run syncctl), ehr-sync-admin (administrators), the systemd unit, the example configuration
/etc/ehr-sync/ehr-sync.toml (only if absent) and the replica's key (only if absent).

  --root DIR     install into the system tree at DIR (an image or chroot; its etc/passwd,
                 etc/group, etc/shadow and etc/gshadow must exist); systemd is not touched
  --no-build     do not build; take the binaries from --bin-dir (default .build-release/release)
  --bin-dir DIR  folder holding the ehr-syncd and syncctl binaries to install
  -h, --help     this text
EOF
}
die() {
    echo "$prog: error: $*" >&2
    exit 1
}
note() { echo "  $*"; }

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
ROOT=""
build=1
bin_dir=""
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
        --no-build)
            build=0
            shift
            ;;
        --bin-dir)
            [ $# -ge 2 ] || die "--bin-dir needs a directory"
            bin_dir=$2
            shift 2
            ;;
        --bin-dir=*)
            bin_dir=${1#--bin-dir=}
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

[ "$(id -u)" -eq 0 ] || die "must run as root (it creates a system user and writes /etc and /usr/local); try: sudo $0"

# --- preflight: everything is checked before anything is changed ---------------------------

if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT=$(cd -- "$ROOT" && pwd -P)
    [ "$ROOT" != / ] || ROOT=""
fi
if [ -n "$ROOT" ]; then
    for f in passwd group shadow gshadow; do
        [ -f "$ROOT/etc/$f" ] ||
            die "--root $ROOT: $ROOT/etc/$f is missing; the root needs its own account files (etc/passwd, etc/group, etc/shadow, etc/gshadow) for useradd --root"
    done
fi
for tool in useradd groupadd install cmp stat; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: apt-get install passwd coreutils diffutils)"
done

if [ -n "$bin_dir" ]; then
    [ -d "$bin_dir" ] || die "--bin-dir $bin_dir: no such directory"
    bin_dir=$(cd -- "$bin_dir" && pwd -P)
else
    bin_dir=$repo/.build-install/release
fi

if [ "$build" -eq 1 ]; then
    swift=$(command -v swift || true)
    [ -n "$swift" ] || die "swift not found on root's PATH; build as your user first:
    swift build -c release --static-swift-stdlib --scratch-path .build-install --product ehr-syncd
    swift build -c release --static-swift-stdlib --scratch-path .build-install --product syncctl
then run: sudo scripts/install.sh --no-build"
    # Under sudo, build as the invoking user so .build-install stays theirs. The Swift runtime
    # is linked statically: the practice machine needs no Swift toolchain.
    as_user=()
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        as_user=(runuser -u "$SUDO_USER" --)
    fi
    echo "== building release binaries (.build-install, Swift runtime linked in)"
    for product in ehr-syncd syncctl; do
        (cd "$repo" && "${as_user[@]}" "$swift" build -c release --static-swift-stdlib --scratch-path .build-install \
            --product "$product")
    done
fi
for b in ehr-syncd syncctl; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b: missing or not executable (build first, or pass --bin-dir)"
done
"$bin_dir/syncctl" --version >/dev/null 2>&1 ||
    die "$bin_dir/syncctl does not run on this machine (missing Swift runtime libraries?)"

# --- helpers ---------------------------------------------------------------------------------

bindir=$ROOT/usr/local/bin
unitdir=$ROOT/etc/systemd/system
dropin_dir=$unitdir/ehr-syncd.service.d
dropin=$dropin_dir/credential.conf
confdir=$ROOT/etc/ehr-sync
conf=$confdir/ehr-sync.toml
cred=$confdir/replica-key.cred
keyfile=$confdir/replica.key
docdir=$ROOT/usr/local/share/doc/ehr-sync
account_opts=()
[ -z "$ROOT" ] || account_opts=(--root "$ROOT")

ensure_dir() { # DIR: created 0755 root:root if missing; an existing folder is left as it is
    [ -d "$1" ] || install -d -m 0755 -o 0 -g 0 "$1"
}

# MODE SRC DST: copies SRC to DST (root-owned) unless DST already has those bytes and that mode.
install_file() {
    local mode=$1 src=$2 dst=$3
    if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c '%a %u' "$dst")" = "${mode#0} 0" ]; then
        note "unchanged  ${dst#"$ROOT"}"
    else
        install -m "$mode" -o 0 -g 0 "$src" "$dst"
        note "installed  ${dst#"$ROOT"}"
    fi
}

# NAME: exit 0 when the group exists (in the root's etc/group with --root).
have_group() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/group"; else getent group "$1" >/dev/null; fi
}
have_user() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/passwd"; else getent passwd "$1" >/dev/null; fi
}
# passwd|group NAME: the numeric id (looked up in the root's files with --root).
numeric_id() {
    if [ -n "$ROOT" ]; then
        awk -F: -v n="$2" '$1 == n { print $3; exit }' "$ROOT/etc/$1"
    else
        getent "$1" "$2" | cut -d: -f3
    fi
}

tmpd=""
cleanup() { [ -z "$tmpd" ] || rm -rf -- "$tmpd"; }
trap cleanup EXIT

# Where systemd-creds can seal the key on this machine: sets creds_with (a --with-key value)
# or creds_reason (why not). Every candidate is proven by an encrypt/decrypt round trip.
creds_with=""
creds_reason=""
creds_usable() {
    if [ -n "$ROOT" ]; then
        creds_reason="installing into --root: a credential sealed with this machine's TPM or host key would not open on the machine that boots $ROOT"
        return 1
    fi
    if [ ! -d /run/systemd/system ]; then
        creds_reason="systemd is not running here, so nothing would decrypt a credential"
        return 1
    fi
    if ! command -v systemd-creds >/dev/null 2>&1; then
        creds_reason="systemd-creds is not installed"
        return 1
    fi
    local candidates=() k out
    if systemd-creds has-tpm2 >/dev/null 2>&1; then candidates+=(host+tpm2); fi
    candidates+=(host)
    for k in "${candidates[@]}"; do
        rm -f -- "$tmpd/probe.cred"
        if printf 'ehr-sync probe' | systemd-creds encrypt --with-key="$k" --name=ehr-sync-probe - "$tmpd/probe.cred" >/dev/null 2>&1 &&
            out=$(systemd-creds decrypt --name=ehr-sync-probe "$tmpd/probe.cred" - 2>/dev/null) &&
            [ "$out" = "ehr-sync probe" ]; then
            creds_with=$k
            rm -f -- "$tmpd/probe.cred"
            return 0
        fi
    done
    rm -f -- "$tmpd/probe.cred"
    creds_reason="systemd-creds could not encrypt and decrypt with a TPM2 or the host key"
    return 1
}

# --- install -----------------------------------------------------------------------------------

echo "== installing ehr-sync${ROOT:+ into $ROOT}"
for d in "$ROOT/usr/local" "$bindir" "$ROOT/usr/local/share" "$ROOT/usr/local/share/doc" "$docdir" \
    "$ROOT/etc" "$ROOT/etc/systemd" "$unitdir" "$confdir"; do
    ensure_dir "$d"
done

install_file 0755 "$bin_dir/ehr-syncd" "$bindir/ehr-syncd"
install_file 0755 "$bin_dir/syncctl" "$bindir/syncctl"

# Accounts: the service's own user and group, the staff group (everyday syncctl) and the
# admin group (accounts, keys, held decisions, conflict review, the audit trail).
for g in ehr-sync ehr-sync-staff ehr-sync-admin; do
    if have_group "$g"; then
        note "kept       group $g"
    else
        groupadd --system "${account_opts[@]}" "$g"
        note "created    group $g"
    fi
done
if have_user ehr-sync; then
    note "kept       user ehr-sync"
else
    useradd --system "${account_opts[@]}" --gid ehr-sync --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "ehr-sync service" ehr-sync
    note "created    user ehr-sync (system user, no login shell, no home)"
fi
svc_uid=$(numeric_id passwd ehr-sync)
svc_gid=$(numeric_id group ehr-sync)
if [ -z "$svc_uid" ] || [ -z "$svc_gid" ]; then die "cannot find the ids of user and group ehr-sync"; fi

install_file 0644 "$repo/systemd/ehr-syncd.service" "$unitdir/ehr-syncd.service"
install_file 0644 "$repo/README.md" "$docdir/README.md"
# The documented example stays next to the docs, to compare a kept configuration against.
install_file 0644 "$repo/config/ehr-sync.toml" "$docdir/ehr-sync.toml.example"

# The key-encryption key: created once, never printed, never replaced.
tmpd=$(mktemp -d "${TMPDIR:-/tmp}/ehr-sync-install.XXXXXX")
if [ -e "$cred" ]; then
    key_kind="cred"
    note "kept       ${cred#"$ROOT"} (encrypted credential)"
elif [ -e "$keyfile" ]; then
    key_kind="file"
    note "kept       ${keyfile#"$ROOT"}"
elif creds_usable; then
    key_kind="cred"
    # The plain key exists only in a private folder on tmpfs while it is sealed.
    plain_dir=$(mktemp -d /run/ehr-sync-install.XXXXXX)
    if "$bindir/syncctl" key generate "$plain_dir/replica-key" >/dev/null &&
        systemd-creds encrypt --with-key="$creds_with" --name=replica-key \
            "$plain_dir/replica-key" "$cred.new" >/dev/null; then
        rm -rf -- "$plain_dir"
        chmod 0600 "$cred.new"
        mv -f -- "$cred.new" "$cred"
    else
        rm -rf -- "$plain_dir" "$cred.new"
        die "could not create the encrypted credential $cred"
    fi
    note "created    ${cred#"$ROOT"} (systemd-creds, key: $creds_with)"
else
    key_kind="file"
    "$bindir/syncctl" key generate "$keyfile" >/dev/null
    chown "$svc_uid:$svc_gid" "$keyfile"
    chmod 0600 "$keyfile"
    note "created    ${keyfile#"$ROOT"} (mode 0600, owner ehr-sync; $creds_reason)"
fi

if [ "$key_kind" = file ]; then
    # The unit loads an encrypted credential; point it at the plain file instead. The empty
    # assignment resets the unit's credential list before the new entry.
    cat >"$tmpd/credential.conf" <<'EOF'
# Written by scripts/install.sh: this machine has no usable systemd-creds (TPM2 or host key),
# so the replica key is the plain file /etc/ehr-sync/replica.key (mode 0600, owner ehr-sync).
[Service]
LoadCredentialEncrypted=
LoadCredential=replica-key:/etc/ehr-sync/replica.key
EOF
    ensure_dir "$dropin_dir"
    install_file 0644 "$tmpd/credential.conf" "$dropin"
    owner_mode=$(stat -c '%u %a' "$keyfile")
    case "$owner_mode" in
        "$svc_uid 600" | "$svc_uid 400") ;;
        *) echo "$prog: warning: ${keyfile#"$ROOT"} is owner/mode $owner_mode; ehr-syncd refuses it until: chown ehr-sync ${keyfile#"$ROOT"} && chmod 600 ${keyfile#"$ROOT"}" >&2 ;;
    esac
elif [ -f "$dropin" ] && grep -q '^LoadCredential=replica-key:' "$dropin"; then
    echo "$prog: warning: ${dropin#"$ROOT"} makes the service load the plain key file, not ${cred#"$ROOT"}; remove it to use the credential" >&2
fi

# The configuration: the documented example, only when none exists.
if [ -e "$conf" ]; then
    note "kept       ${conf#"$ROOT"}"
else
    cp -- "$repo/config/ehr-sync.toml" "$tmpd/ehr-sync.toml"
    if [ "$key_kind" = cred ]; then
        # With the credential, [key] must be absent (a named file wins over the credential).
        sed -i -e 's|^\[key\]$|# [key]  (install.sh: the key is the systemd credential replica-key)|' \
            -e 's|^file = "/etc/ehr-sync/replica.key"$|# &|' "$tmpd/ehr-sync.toml"
    fi
    install -m 0644 -o 0 -g 0 "$tmpd/ehr-sync.toml" "$conf"
    note "installed  ${conf#"$ROOT"} (the documented example: set [ehr] base_url)"
fi
if [ "$key_kind" = cred ] && grep -q '^\[key\]' "$conf"; then
    echo "$prog: warning: ${conf#"$ROOT"} has a [key] section, which wins over the credential; remove it" >&2
fi

# --- next steps ------------------------------------------------------------------------------

if [ "$key_kind" = cred ]; then
    backup="The key is sealed in /etc/ehr-sync/replica-key.cred and opens on this machine only.
     Keep a copy offline, e.g. on a USB stick kept locked away:
       systemd-creds decrypt --name=replica-key /etc/ehr-sync/replica-key.cred - > /media/usb/ehr-sync-replica.key"
else
    backup="Copy /etc/ehr-sync/replica.key to offline storage kept locked away (e.g. a USB stick)."
fi
cat <<EOF

ehr-sync is installed${ROOT:+ in $ROOT}. Next steps${ROOT:+ (on the machine that boots it)}:
  1. Set the hosted EHR's FHIR base URL, [ehr] base_url (and its token), in
       /etc/ehr-sync/ehr-sync.toml
     and its address range in the unit's IPAddressAllow= (systemctl edit ehr-syncd).
  2. Start the service now and at every boot:
       systemctl daemon-reload && systemctl enable --now ehr-syncd
  3. Check it: syncctl status   (and journalctl -u ehr-syncd)
     Staff who may run syncctl join the group: usermod -aG ehr-sync-staff NAME
     Administrators join both groups: usermod -aG ehr-sync-staff,ehr-sync-admin NAME
  4. Back up the key: without it the replica cannot be read.
     $backup
EOF
if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && systemctl is-active --quiet ehr-syncd.service 2>/dev/null; then
    echo "  ehr-syncd is running: apply new binaries or unit with: systemctl daemon-reload && systemctl restart ehr-syncd"
fi
