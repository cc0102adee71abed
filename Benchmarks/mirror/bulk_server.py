#!/usr/bin/env python3
"""A minimal, conformant FHIR R4 Bulk Data ($export) server for benchmarks (stdlib only).

It serves a folder of `<Type>.ndjson` files as the result of a system-level `$export`, so that
`ehr-syncd` can be measured on data sets far larger than a real test server can hold (1M resources):

  GET /fhir/metadata                 CapabilityStatement: rest[0].mode=server, interaction
                                     history-system, operation export, every type with search-type
  GET /fhir/$export                  needs `Prefer: respond-async`: 202 + Content-Location (status URL)
  GET /fhir/bulk-status/<job>        200 + manifest {transactionTime, request, requiresAccessToken:false,
                                     output:[{type,url,count}], error:[]}, one file per type
  DELETE /fhir/bulk-status/<job>     202 (job forgotten)
  GET /fhir/bulk-files/<Type>.ndjson the file, streamed from disk (sendfile), application/fhir+ndjson,
                                     Content-Length
  GET /fhir/_history?...             an empty history Bundle (nothing changed since the export)

Anything else answers 404 with an OperationOutcome, and is counted: the request log (method, route
label, status, bytes; never ids or query values) goes to stderr and is summed up at exit.

Usage: bulk_server.py --dir DIR [--port 0]   prints one JSON line {"port","base_url","pid"} once listening,
then serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FHIR = "/fhir"
TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def fhir_instant(t: float) -> str:
    """A FHIR instant in UTC with milliseconds and Z (what servers should send, and compare as text)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def count_lines(path: Path) -> int:
    """Number of non-empty NDJSON lines, counted in 8 MiB blocks (no parsing)."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


class Store:
    """The served data set: one NDJSON file per resource type, with line counts (cached next to it)."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.files: dict[str, Path] = {}
        self.counts: dict[str, int] = {}
        # Line counts: from `.counts.json` ({"Type": {"size": bytes, "count": n}}, written by whoever made
        # the files, e.g. bench_mirror.py) when it matches the file size, else counted. Never written here.
        cache = self.folder / ".counts.json"
        cached = json.loads(cache.read_text()) if cache.exists() else {}
        for path in sorted(self.folder.glob("*.ndjson")):
            rtype = path.stem
            if not TYPE_RE.match(rtype):
                continue
            entry = cached.get(rtype) or {}
            known = entry.get("size") == path.stat().st_size and isinstance(entry.get("count"), int)
            self.files[rtype] = path
            self.counts[rtype] = entry["count"] if known else count_lines(path)


class Jobs:
    """Export jobs: they complete instantly (the files already exist); kept in memory."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self.seq = 0

    def create(self, manifest: dict) -> str:
        with self.lock:
            self.seq += 1
            job = f"{self.seq:08x}{os.getpid():08x}"
            self.jobs[job] = manifest
            return job

    def get(self, job: str) -> dict | None:
        with self.lock:
            return self.jobs.get(job)

    def delete(self, job: str) -> bool:
        with self.lock:
            return self.jobs.pop(job, None) is not None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    server_version = "bench-bulk-server/1"
    store: Store
    jobs: Jobs
    base_url: str
    stats: collections.Counter
    stats_lock = threading.Lock()

    # ---- plumbing

    def log_message(self, fmt: str, *args) -> None:  # the default log prints full paths: replaced by note()
        pass

    def note(self, route: str, status: int, nbytes: int) -> None:
        with self.stats_lock:
            self.stats[(self.command, route, status)] += 1
        print(f"{self.command} {route} {status} {nbytes}", file=sys.stderr, flush=True)

    def send_json(self, status: int, obj: dict | None, route: str, content_type: str = "application/fhir+json",
                  headers: dict[str, str] | None = None) -> None:
        body = b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)  # adds Server and Date (IMF-fixdate)
        if obj is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.note(route, status, len(body))

    def outcome(self, status: int, code: str, text: str, route: str) -> None:
        self.send_json(status, {"resourceType": "OperationOutcome",
                                "issue": [{"severity": "error", "code": code, "diagnostics": text}]}, route)

    # ---- routes

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        if not path.startswith(FHIR + "/"):
            return self.outcome(404, "not-found", "not a FHIR path", "other")
        rest = path[len(FHIR) + 1:]
        if rest == "metadata":
            return self.send_json(200, self.capability_statement(), "metadata")
        if rest == "$export":
            return self.kick_off(query)
        if rest.startswith("bulk-status/"):
            manifest = self.jobs.get(rest.split("/", 1)[1])
            if manifest is None:
                return self.outcome(404, "not-found", "no such export job", "bulk-status")
            return self.send_json(200, manifest, "bulk-status", content_type="application/json",
                                  headers={"Expires": self.date_time_string(time.time() + 3600)})
        if rest.startswith("bulk-files/"):
            return self.send_file(rest.split("/", 1)[1])
        if rest == "_history":
            # Nothing changes on this server after the export: an empty history page.
            return self.send_json(200, {"resourceType": "Bundle", "type": "history", "total": 0,
                                        "link": [{"relation": "self", "url": self.base_url + "/_history"}],
                                        "entry": []}, "_history")
        label = rest.split("/", 1)[0].split("?", 1)[0]
        return self.outcome(404, "not-supported", "this benchmark server only serves $export and _history",
                            label if TYPE_RE.match(label) or label.startswith(("_", "$")) else "other")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_DELETE(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        prefix = FHIR + "/bulk-status/"
        if path.startswith(prefix) and self.jobs.delete(path[len(prefix):]):
            return self.send_json(202, None, "bulk-status")
        return self.outcome(404, "not-found", "no such export job", "bulk-status")

    def capability_statement(self) -> dict:
        resources = [{"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]}
                     for t in sorted(self.store.files)]
        return {
            "resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01",
            "kind": "instance", "fhirVersion": "4.0.1", "format": ["json", "application/fhir+json"],
            "software": {"name": "bench-bulk-server", "version": "1"},
            "implementation": {"description": "ehr-sync benchmark Bulk Data server", "url": self.base_url},
            "rest": [{
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": "history-system"}],
                "operation": [{"name": "export",
                               "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}],
            }],
        }

    def kick_off(self, query: dict[str, list[str]]) -> None:
        prefer = self.headers.get("Prefer", "")
        if "respond-async" not in prefer:
            return self.outcome(400, "invalid", "Prefer: respond-async is required", "$export")
        fmt = (query.get("_outputFormat") or ["application/fhir+ndjson"])[0]
        if fmt not in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
            return self.outcome(400, "not-supported", "only NDJSON output is supported", "$export")
        wanted = None
        if "_type" in query:
            wanted = {t for v in query["_type"] for t in v.split(",") if t}
        output = [{"type": t, "url": f"{self.base_url}/bulk-files/{t}.ndjson", "count": self.store.counts[t]}
                  for t in sorted(self.store.files) if wanted is None or t in wanted]
        manifest = {
            "transactionTime": fhir_instant(time.time()),
            "request": self.base_url + self.path[len(FHIR):],
            "requiresAccessToken": False,
            "output": output,
            "error": [],
        }
        job = self.jobs.create(manifest)
        self.send_json(202, None, "$export", headers={"Content-Location": f"{self.base_url}/bulk-status/{job}"})

    def send_file(self, name: str) -> None:
        rtype = name[:-len(".ndjson")] if name.endswith(".ndjson") else ""
        path = self.store.files.get(rtype)
        if path is None:
            return self.outcome(404, "not-found", "no such file", "bulk-files")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+ndjson")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return self.note("bulk-files", 200, 0)
        self.wfile.flush()
        with open(path, "rb") as f:
            sent = self.connection.sendfile(f)  # zero-copy from the page cache; blocks until sent
        self.note("bulk-files", 200, sent)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="folder of <Type>.ndjson files")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    args = ap.parse_args()

    store = Store(Path(args.dir))
    if not store.files:
        print(f"bulk_server: no <Type>.ndjson files in {args.dir}", file=sys.stderr)
        return 2
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    Handler.store = store
    Handler.jobs = Jobs()
    Handler.base_url = f"http://127.0.0.1:{port}{FHIR}"
    Handler.stats = collections.Counter()

    def stop(signum, frame):  # serve_forever must be stopped from another thread
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"port": port, "base_url": Handler.base_url, "pid": os.getpid(),
                      "resources": sum(store.counts.values()), "types": len(store.files)}), flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        summary = {f"{m} {r} {s}": n for (m, r, s), n in sorted(Handler.stats.items())}
        print("requests: " + json.dumps(summary), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
