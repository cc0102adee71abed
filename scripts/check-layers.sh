#!/usr/bin/env bash
# The layers the compiler enforces, checked on the binaries: syncctl (a client of the control
# socket) links the domain only, never the storage, HTTP or server frameworks.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product syncctl >/dev/null 2>&1
bin="$(swift build --show-bin-path 2>/dev/null)/syncctl"
status=0
for module in GRDB Hummingbird NIOCore NIOPosix AsyncHTTPClient NIOSSL; do
    # Swift symbols carry the module name length-prefixed (e.g. s4GRDB…, 11Hummingbird…).
    mangled="${#module}${module}"
    count=$(nm "$bin" | grep -c "$mangled" || true)
    echo "syncctl symbols from $module: $count"
    [ "$count" -eq 0 ] || status=1
done
if ldd "$bin" | grep -q sqlite; then
    echo "syncctl links libsqlite3"
    status=1
fi
[ $status -eq 0 ] && echo "layers: syncctl links SyncModel only"
exit $status
