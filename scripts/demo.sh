#!/usr/bin/env bash
# make demo: a test EHR (sekmet-fhir) with a synthetic practice on loopback, mirrored by
# ehr-syncd into an encrypted replica in a temporary folder, then `syncctl status`.
set -euo pipefail
cd "$(dirname "$0")/.."
SET="${DEMO_SET:-small}"
DATA="${EHR_SYNC_FHIR_DATA:-$(cd .. && pwd)/shared/fhir-data}/$SET"
PY=.build-venv/bin/python
HARNESS=Tests/harness/sekmet_harness.py
[ -f "$DATA/load_order.txt" ] || { echo "demo: no data set at $DATA (set EHR_SYNC_FHIR_DATA)" >&2; exit 1; }

echo "== building ehr-syncd and syncctl"
swift build --product ehr-syncd 2>&1 | grep -E "error|Compiling|Build complete" || true
swift build --product syncctl 2>&1 | grep -E "error|Build complete" || true
BIN=.build/debug

work=$(mktemp -d /tmp/ehr-sync-demo.XXXXXX)
daemon=""
server=""
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null; fi
    if [ -n "$server" ]; then "$PY" "$HARNESS" stop --pid "$server" >/dev/null; fi
    true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a test EHR (sekmet-fhir) on loopback and loading the synthetic '$SET' practice"
info=$("$PY" "$HARNESS" start --data-dir "$work/ehr")
base=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["base_url"])' "$info")
server=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$info")
"$PY" "$HARNESS" load --base-url "$base" --set "$DATA" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("   %d resources in %.0f s" % (r["total"], r["elapsed_s"]))'

echo "== key and configuration in $work"
"$BIN/syncctl" key generate "$work/replica.key"
cat > "$work/ehr-sync.toml" <<TOML
[ehr]
base_url = "$base"
requests_per_second = 200
[sync]
# No resource_types: the daemon discovers what the EHR serves (its CapabilityStatement is not
# trusted alone).
poll_interval = 30
[replica]
state_dir = "$work/state"
[key]
file = "$work/replica.key"
[control]
socket = "$work/control.sock"
TOML

echo "== ehr-syncd mirrors the practice (its log below)"
"$BIN/ehr-syncd" --config "$work/ehr-sync.toml" &
daemon=$!
ctl=("$BIN/syncctl" --socket "$work/control.sock")
for _ in $(seq 1 600); do
    json=$("${ctl[@]}" status --json 2>/dev/null || true)
    if [ -n "$json" ] && python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["initialSyncComplete"] and s.get("lastSyncAt") else 1)' "$json"; then
        break
    fi
    sleep 1
done
echo
echo "== syncctl status"
"${ctl[@]}" status || true
