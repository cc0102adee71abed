#!/usr/bin/env python3
"""make bench-read: read latency of ehr-syncd's local API (patient search, patient summary) under concurrent load.

For the `medium` practice (200 patients, 75 757 resources) and for 10x it (2 000 patients, 757 570 resources):

1. The set is written as NDJSON from `medium` (cached in <repo>/.build-bench/read-<N>x-from-medium/): N copies
   of every resource with fresh ids (`<id>-<k>`, references rewritten), meta.versionId "1" and one lastUpdated,
   as a server's export carries them. Copies k >= 1 of a Patient also get their own family names (a letter
   prefix) and identifier values (a `-k` suffix), so a name or identifier search finds one patient at 10x as
   at 1x instead of the 10 copies of a name: the searches measure the lookup in a larger index, not larger
   answers.
2. Benchmarks/mirror/bulk_server.py serves it; `ehr-syncd --once` mirrors it by $export into a fresh encrypted
   replica (wall time reported, not the subject here); then the daemon runs normally (local API and web
   viewer on loopback, the bulk server still its EHR) and a staff account is added (`syncctl user add`) and
   signed in (`POST /login`) for the web viewer's session cookie.
3. wrk (Debian package `wrk`) drives each scenario with a Lua script rotating over the patients:
     baseline     GET /fhir/metadata without a token: the 401 answer of the same server stack, no work (no
                  replica access, no audit record): the no-work baseline of the headline ratio
     metadata     GET /fhir/metadata with the token: the CapabilityStatement (clients fetch it on connect)
     search       GET /fhir/Patient?family=F | given=G&family=F | family=F&birthdate=B | identifier=S|V
     summary      GET /fhir/Patient/{id}/$everything
     web summary  GET /patients/{id} with the session cookie (the HTML summary), when the web viewer answers
   Two loads per scenario, one wrk thread, --connections (8) connections:
     - latency: each connection pauses a random 0..--think-ms (100) ms between its requests (busy
       workstations and integrations, about 8 x 1000/(50 + latency) requests/s offered): `<name> p50/p99`;
     - saturation: no pause: `<name> throughput: N req/s` and `<name> p99 at saturation`.
   A warm-up run per scenario first (not counted); then --runs (3) rounds, the scenario order rotating;
   medians over the rounds. The daemon's CPU time per request (from /proc) is reported too.

Output: `name: value unit` lines on stdout (the 10x ones carry "(10x)"), then the headline ratio against the
baseline measured in the same run last: `summary p99 ratio vs no-work baseline: X` (medium, latency load).
Goals: search p99 <= 20 ms and summary p99 <= 50 ms. Progress and notes on stderr. Only counts and timings are printed,
never resource content. Daemon logs (no patient data by design) are kept in <repo>/.build-bench/read-logs/<time>/.

Usage: bench_read.py [--set medium] [--multiples 1,10] [--runs 3] [--duration 10] [--connections 8]
                     [--think-ms 100] [--keep]
(`make bench-read` builds ehr-syncd and syncctl with `swift build -c release --scratch-path .build-release`
first.) Standard library only, plus the `wrk` program.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DAEMON_BIN = REPO / ".build-release" / "release" / "ehr-syncd"
SYNCCTL_BIN = REPO / ".build-release" / "release" / "syncctl"
BULK_SERVER = REPO / "Benchmarks" / "mirror" / "bulk_server.py"
CACHE = REPO / ".build-bench"  # ignored by git (.gitignore: .build*/)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PLACEHOLDER = "~K~"  # '~' is not allowed in FHIR ids or references: it cannot clash with data
FAMILY_MARK = "~F~"
IDENT_MARK = "~I~"
REF_RE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
GEN_VERSION = "1"  # bump when the generated format changes (invalidates the cache)


def info(msg: str) -> None:
    print(f"[bench-read {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def result(name: str, value: float, unit: str = "", digits: int = 1) -> None:
    print(f"{name}: {value:.{digits}f}{' ' + unit if unit else ''}", flush=True)


class BenchFailure(Exception):
    pass


def on_sigterm(signum, frame):
    raise KeyboardInterrupt  # same path as Ctrl-C: the finally blocks clean up


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM one child we started (by its pid), SIGKILL after the timeout."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """utime+stime of one process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


# ------------------------------------------------------------------ the data set: N copies of medium

def letters(k: int) -> str:
    """A letters-only prefix per copy (none for copy 0): 1 -> "Qb", 2 -> "Qc", ... (names stay names)."""
    if k == 0:
        return ""
    out = ""
    while k:
        k, r = divmod(k, 26)
        out = chr(ord("a") + r) + out
    return "Q" + out


def tag_references(node) -> None:
    """Appends the placeholder to every relative `reference: "Type/id"` (contained `#x` and URLs are left)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and REF_RE.match(v):
                node[k] = v + PLACEHOLDER
            elif isinstance(v, (dict, list)):
                tag_references(v)
    elif isinstance(node, list):
        for v in node:
            tag_references(v)


def fingerprint(src: Path, copies: int) -> str:
    h = hashlib.sha256(f"v{GEN_VERSION} copies={copies}".encode())
    for p in sorted(src.glob("*.ndjson")) + [src / "load_order.txt"]:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def build_set(src: Path, dest: Path, copies: int) -> dict:
    """Writes `copies` copies of every resource of `src` into `dest` (reused when already there)."""
    fp = fingerprint(src, copies)
    marker = dest / "done.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("fingerprint") == fp:
            info(f"{dest.name}: reusing the generated set")
            return done
    t0 = time.monotonic()
    info(f"{dest.name}: generating {copies} cop{'y' if copies == 1 else 'ies'} of {src.name} (once; cached)")
    shutil.rmtree(dest, ignore_errors=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    types = [t for t in (src / "load_order.txt").read_text().split() if t]
    last_updated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    counts: dict[str, int] = {}
    for rtype in types:
        rows = []
        with open(src / f"{rtype}.ndjson", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                if PLACEHOLDER in line or FAMILY_MARK in line or IDENT_MARK in line:
                    raise BenchFailure(f"{rtype}.ndjson contains a placeholder")
                obj = json.loads(line)
                if not ID_RE.match(obj.get("id", "")) or len(obj["id"]) + 1 + len(str(copies)) > 64:
                    raise BenchFailure(f"{rtype}.ndjson: an id would not stay a valid FHIR id with a suffix")
                obj["id"] += PLACEHOLDER
                meta = obj.setdefault("meta", {})
                meta["versionId"] = "1"
                meta["lastUpdated"] = last_updated
                tag_references(obj)
                if rtype == "Patient":
                    for name in obj.get("name") or []:
                        if isinstance(name.get("family"), str):
                            name["family"] = FAMILY_MARK + name["family"]
                    for ident in obj.get("identifier") or []:
                        if isinstance(ident.get("value"), str):
                            ident["value"] += IDENT_MARK
                rows.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
        with open(tmp / f"{rtype}.ndjson", "w", encoding="utf-8", newline="\n") as f:
            for k in range(copies):
                text = "\n".join(rows)
                text = text.replace(PLACEHOLDER, f"-{k}")
                if rtype == "Patient":
                    text = text.replace(FAMILY_MARK, letters(k)).replace(IDENT_MARK, f"-{k}" if k else "")
                f.write(text + "\n")
        counts[rtype] = len(rows) * copies
    (tmp / ".counts.json").write_text(json.dumps(
        {t: {"size": (tmp / f"{t}.ndjson").stat().st_size, "count": c} for t, c in counts.items()}))
    os.rename(tmp, dest)
    done = {"fingerprint": fp, "counts": counts, "copies": copies}
    (dest / "done.json").write_text(json.dumps(done))
    os.sync()  # no writeback of the files competing with the timed runs
    info(f"{dest.name}: {sum(counts.values())} resources, "
         f"{sum(p.stat().st_size for p in dest.glob('*.ndjson')) / 1e9:.2f} GB, {time.monotonic() - t0:.0f} s")
    return done


def search_paths(set_dir: Path) -> tuple[list[str], list[str]]:
    """(search paths, patient ids) for the Lua scripts: one search per patient, four kinds in turn."""
    searches, ids = [], []
    with open(set_dir / "Patient.ndjson", encoding="utf-8") as f:
        for n, line in enumerate(f):
            p = json.loads(line)
            ids.append(p["id"])
            name = next((x for x in p.get("name") or [] if x.get("family")), {})
            family, given = name.get("family"), (name.get("given") or [None])[0]
            ident = next((i for i in p.get("identifier") or [] if i.get("system") and i.get("value")
                          and (i.get("type") or {}).get("coding", [{}])[0].get("code") == "MR"), None)
            kinds = []
            if family:
                kinds.append({"family": family})
            if family and given:
                kinds.append({"given": given, "family": family})
            if family and p.get("birthDate"):
                kinds.append({"family": family, "birthdate": p["birthDate"]})
            if ident:
                kinds.append({"identifier": f"{ident['system']}|{ident['value']}"})
            if kinds:
                query = urllib.parse.urlencode(kinds[n % len(kinds)], quote_via=urllib.parse.quote)
                searches.append(f"/fhir/Patient?{query}")
    rng = random.Random(7)
    rng.shuffle(searches)
    rng.shuffle(ids)
    return searches, ids


# ------------------------------------------------------------------ the daemon

def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, base_url: str, types: list[str], listen: str, token_file: Path) -> Path:
    key = write_secret(folder / "replica.key", base64.b64encode(os.urandom(32)).decode() + "\n")
    cfg = folder / "ehr-sync.toml"
    cfg.write_text(
        "[ehr]\n"
        f"base_url = {toml_str(base_url)}\n"
        "requests_per_second = 1000\n"
        "[sync]\n"
        f"resource_types = [{', '.join(toml_str(t) for t in types)}]\n"
        "[replica]\n"
        f"state_dir = {toml_str(str(folder / 'state'))}\n"
        "[key]\n"
        f"file = {toml_str(str(key))}\n"
        "[control]\n"
        f"socket = {toml_str(str(folder / 'control.sock'))}\n"
        "[local_api]\n"
        f"listen = {toml_str(listen)}\n"
        f"token_file = {toml_str(str(token_file))}\n"
        "[web]\n"
        "session_idle_timeout = 86400\n")
    return cfg


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 60) -> tuple[int, dict, bytes]:
    """One request without following redirects: (status, lowercased headers, body)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def web_session(root: str, socket_path: Path, syncctl: Path, log: Path) -> str | None:
    """Adds a staff account and signs it in; the session cookie (`name=value`), or None without a web viewer."""
    password = secrets.token_urlsafe(18)
    with open(log, "ab") as out:
        r = subprocess.run([str(syncctl), "user", "add", "bench", "--language", "en", "--socket", str(socket_path)],
                           input=(password + "\n").encode(), stdout=out, stderr=subprocess.STDOUT)
    if r.returncode:
        info(f"syncctl user add failed (exit {r.returncode}, see {log}): no web summary scenario")
        return None
    # The sign-in form's CSRF token and its cookie first, as a browser gets them.
    _, page_headers, page = http("GET", f"{root}/login", {}, None)
    login_cookie = page_headers.get("set-cookie", "").split(";", 1)[0]
    found = re.search(r'name="csrf" value="([^"]+)"', page.decode("utf-8", "replace"))
    csrf = found.group(1) if found else ""
    status, headers, _ = http("POST", f"{root}/login",
                              {"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie},
                              urllib.parse.urlencode({"name": "bench", "password": password, "csrf": csrf}).encode())
    cookie = headers.get("set-cookie", "").split(";", 1)[0]
    if status not in (302, 303) or "=" not in cookie:
        info(f"web sign-in answered HTTP {status} without a session cookie: no web summary scenario")
        return None
    return cookie


class Daemon:
    """ehr-syncd: --once to mirror, then run normally with the local API and the web viewer."""

    def __init__(self, binary: Path, syncctl: Path, folder: Path, base_url: str, types: list[str], logs: Path,
                 label: str):
        folder.mkdir(parents=True)
        self.binary, self.syncctl, self.folder, self.logs, self.label = binary, syncctl, folder, logs, label
        self.token = secrets.token_hex(24)
        token_file = write_secret(folder / "local-api.tokens", f"bench-read {self.token}\n")
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.cfg = write_config(folder, base_url, types, f"127.0.0.1:{self.port}", token_file)
        self.proc: subprocess.Popen | None = None

    def mirror(self) -> dict:
        log = self.logs / f"{self.label}-once.log"
        info(f"{self.label}: ehr-syncd --once")
        t0 = time.perf_counter()
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(self.binary), "--config", str(self.cfg), "--once"], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                _, status, ru = os.wait4(proc.pid, 0)
            except BaseException:
                stop_process(proc)
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        text = log.read_text(errors="replace")
        if proc.returncode:
            raise BenchFailure(f"{self.label}: ehr-syncd --once exited with {proc.returncode}; log {log}:\n"
                               + "\n".join(text.splitlines()[-15:]))
        m = re.search(r"resources=(\d+) .*initial sync complete", text)
        size = sum(p.stat().st_size for p in (self.folder / "state").glob("*") if p.is_file())
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "resources": int(m.group(1)) if m else None,
                "state_bytes": size}

    def start(self) -> None:
        log = open(self.logs / f"{self.label}-daemon.log", "ab")
        self.proc = subprocess.Popen([str(self.binary), "--config", str(self.cfg)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 300  # the patient index is rebuilt from the sealed Patients at open
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchFailure(f"{self.label}: ehr-syncd exited with {self.proc.returncode} at start; "
                                   f"see {self.logs / (self.label + '-daemon.log')}")
            try:
                status, _, _ = http("GET", f"{self.root}/fhir/metadata", self.auth, timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchFailure(f"{self.label}: the local API did not answer within 300 s")

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


# ------------------------------------------------------------------ wrk

LUA = r"""
-- Generated by bench_read.py: rotates over the request paths of PATHS_FILE, starting at a random place.
local paths = {}
for line in io.lines(%(paths)s) do paths[#paths + 1] = line end
%(headers)s
local think = %(think)d
local i = 0
function init(args)
  math.randomseed(os.time() + %(seed)d)
  i = math.random(#paths)
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
if think > 0 then
  function delay() return math.random(0, think) end
end
function done(summary, latency, requests)
  io.write(string.format(
    "BENCH-JSON {\"requests\":%%d,\"duration_us\":%%d,\"bytes\":%%d,\"status_errors\":%%d,\"timeouts\":%%d," ..
    "\"connect_errors\":%%d,\"read_errors\":%%d,\"p50_us\":%%d,\"p90_us\":%%d,\"p99_us\":%%d,\"max_us\":%%d}\n",
    summary.requests, summary.duration, summary.bytes, summary.errors.status, summary.errors.timeout,
    summary.errors.connect, summary.errors.read, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_lua(folder: Path, name: str, paths: list[str], headers: dict, think_ms: int, seed: int) -> Path:
    paths_file = folder / f"{name}.paths"
    paths_file.write_text("".join(p + "\n" for p in paths))
    header_lines = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    script = folder / f"{name}-think{think_ms}.lua"
    script.write_text(LUA % {"paths": lua_string(str(paths_file)), "headers": header_lines, "think": think_ms,
                             "seed": seed})
    return script


def wait_quiet(pid: int, limit: float = 15.0) -> float:
    """Waits until the daemon is idle (under 10 % of a core over 250 ms): requests still in flight when the
    previous wrk run stopped must not be billed to the next one. Returns the seconds waited."""
    t0 = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - t0 < limit:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - last < 0.025:
            break
        last = now
    return time.monotonic() - t0


def run_wrk(root: str, script: Path, connections: int, duration: float, daemon_pid: int, expected: int) -> dict:
    wait_quiet(daemon_pid)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s", "-s", str(script), root]
    cpu0 = cpu_seconds(daemon_pid)
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    cpu = cpu_seconds(daemon_pid) - cpu0
    m = re.search(r"^BENCH-JSON (\{.*\})$", r.stdout, re.M)
    if r.returncode or not m:
        raise BenchFailure(f"wrk failed (exit {r.returncode}): {r.stderr[-500:]} {r.stdout[-500:]}")
    out = json.loads(m.group(1))
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6) if out["duration_us"] else 0.0
    out["cpu_ms_per_request"] = 1000 * cpu / out["requests"] if out["requests"] else 0.0
    # wrk counts answers >= 400 as status errors: all of them for the 401 baseline, none otherwise.
    wrong = out["status_errors"] if expected < 400 else out["requests"] - out["status_errors"]
    out["bad"] = wrong + out["timeouts"] + out["connect_errors"] + out["read_errors"]
    return out


# ------------------------------------------------------------------ one data set

def bench_set(args, label: str, suffix: str, set_dir: Path, types: list[str], daemon_bin: Path, syncctl: Path,
              work: Path, logs: Path, cleanup: list) -> dict:
    searches, ids = search_paths(set_dir)
    with open(logs / f"{label}-bulk-server.log", "ab") as blog:
        bulk = subprocess.Popen([sys.executable, str(BULK_SERVER), "--dir", str(set_dir)], stdout=subprocess.PIPE,
                                stderr=blog, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    cleanup.append(lambda: stop_process(bulk))
    ready = json.loads(bulk.stdout.readline() or "{}")
    if "base_url" not in ready:
        raise BenchFailure(f"bulk_server.py did not start; see {logs / (label + '-bulk-server.log')}")
    daemon = Daemon(daemon_bin, syncctl, work / label, ready["base_url"], types, logs, label)
    cleanup.append(daemon.stop)
    mirrored = daemon.mirror()
    info(f"{label}: mirrored {mirrored['resources']} resources in {mirrored['wall']:.1f} s "
         f"(cpu {mirrored['cpu']:.1f} s), replica {mirrored['state_bytes'] / 1e6:.0f} MB")
    result(f"mirror --once wall{suffix}", mirrored["wall"], "s")
    t0 = time.monotonic()
    daemon.start()
    info(f"{label}: local API up {time.monotonic() - t0:.1f} s after start (patient index built at open)")
    result(f"daemon start to first answer{suffix}", time.monotonic() - t0, "s")

    # name: (paths, headers, the status every answer must have)
    scenarios = {"baseline": (["/fhir/metadata"], {"Accept": "application/fhir+json"}, 401),
                 "metadata": (["/fhir/metadata"], daemon.auth, 200),
                 "search": (searches, daemon.auth, 200),
                 "summary": ([f"/fhir/Patient/{i}/$everything" for i in ids], daemon.auth, 200)}
    cookie = web_session(daemon.root, daemon.folder / "control.sock", syncctl, logs / f"{label}-syncctl.log")
    if cookie:
        scenarios["web summary"] = ([f"/patients/{i}" for i in ids], {"Cookie": cookie, "Accept": "text/html"}, 200)
    # Every scenario's paths answer as expected before the load (wrk does not tell a 302 to /login from a 200).
    for name, (paths, headers, expected) in scenarios.items():
        for p in paths[:3]:
            status, _, body = http("GET", daemon.root + p, headers)
            if status != expected:
                raise BenchFailure(f"{label}: {name} answered HTTP {status} before the load, not {expected}")
    sizes = {name: len(http("GET", daemon.root + paths[0], headers)[2])
             for name, (paths, headers, _) in scenarios.items()}
    info(f"{label}: answer sizes of a first request: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()))

    scripts = {}
    for n, (name, (paths, headers, _)) in enumerate(scenarios.items()):
        slug = name.replace(" ", "-")
        scripts[name] = (write_lua(work, f"{label}-{slug}", paths, headers, args.think_ms, n),
                         write_lua(work, f"{label}-{slug}", paths, headers, 0, n))
    for name, (_, saturate) in scripts.items():  # warm-up: page cache, allocator, connections
        w = run_wrk(daemon.root, saturate, args.connections, min(3.0, args.duration), daemon.proc.pid,
                    scenarios[name][2])
        info(f"{label}: warm-up {name}: {w['rps']:.0f} req/s, p99 {w['p99_us'] / 1000:.1f} ms")
    runs: dict[str, dict[str, list[dict]]] = {name: {"latency": [], "saturation": []} for name in scripts}
    names = list(scripts)
    for r in range(args.runs):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            paced, saturate = scripts[name]
            for mode, script in (("latency", paced), ("saturation", saturate)):
                w = run_wrk(daemon.root, script, args.connections, args.duration, daemon.proc.pid,
                            scenarios[name][2])
                if w["bad"]:  # reported, not fatal: a slow endpoint must still get its figures
                    info(f"WARNING {label}: {name} ({mode}): {w['bad']} unexpected answers; "
                         f"{w['status_errors']} statuses >= 400, {w['timeouts']} timeouts (not in the latencies), "
                         f"{w['connect_errors'] + w['read_errors']} socket errors in {w['requests']} requests")
                runs[name][mode].append(w)
                info(f"{label} run {r + 1} {name} {mode}: {w['requests']} requests, {w['rps']:.0f} req/s, "
                     f"p50 {w['p50_us'] / 1000:.1f} ms, p99 {w['p99_us'] / 1000:.1f} ms, "
                     f"daemon cpu {w['cpu_ms_per_request']:.2f} ms/request")
        if daemon.proc.poll() is not None:
            raise BenchFailure(f"{label}: the daemon exited during the load ({daemon.proc.returncode})")
    # After the load: the session still opens the summary (no silent redirect to /login during the runs).
    if "web summary" in scenarios:
        paths, headers, _ = scenarios["web summary"]
        status, _, _ = http("GET", daemon.root + paths[0], headers)
        if status != 200:
            raise BenchFailure(f"{label}: the web summary answered HTTP {status} after the load")
    daemon.stop()
    stop_process(bulk)
    log_text = (logs / f"{label}-daemon.log").read_text(errors="replace")
    levels = {lv: len(re.findall(rf"^\S+ {lv} ", log_text, re.M)) for lv in ("warning", "error", "critical")}
    if any(levels.values()):
        info(f"{label}: daemon log has {levels} (see {logs / (label + '-daemon.log')})")
    if not args.keep:
        shutil.rmtree(daemon.folder, ignore_errors=True)

    med = lambda name, mode, key: statistics.median(w[key] for w in runs[name][mode])  # noqa: E731
    figures = {}
    for name in scripts:
        figures[name] = {"p50": med(name, "latency", "p50_us") / 1000, "p99": med(name, "latency", "p99_us") / 1000,
                         "rps": med(name, "saturation", "rps"),
                         "p99_saturation": med(name, "saturation", "p99_us") / 1000,
                         "cpu": med(name, "saturation", "cpu_ms_per_request")}
    for name in scripts:
        f = figures[name]
        result(f"{name} p50{suffix}", f["p50"], "ms", 2)
        result(f"{name} p99{suffix}", f["p99"], "ms", 2)
    for name in scripts:
        bad = sum(w["bad"] for mode in runs[name].values() for w in mode)
        if bad:
            result(f"{name} unexpected answers{suffix}", bad, "", 0)
    for name in scripts:
        result(f"{name} throughput{suffix}", figures[name]["rps"], "req/s", 0)
        result(f"{name} p99 at saturation{suffix}", figures[name]["p99_saturation"], "ms", 1)
        result(f"{name} daemon cpu{suffix}", figures[name]["cpu"], "ms/request", 2)
    return figures


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="medium", help="data set under $EHR_SYNC_FHIR_DATA or ../shared/fhir-data")
    ap.add_argument("--multiples", default="1,10", help="copies of the set to measure, comma-separated")
    ap.add_argument("--runs", type=int, default=3, help="rounds of every scenario (medians are reported)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    ap.add_argument("--connections", type=int, default=8, help="concurrent connections of wrk")
    ap.add_argument("--think-ms", type=int, default=100,
                    help="latency load: each connection pauses a random 0..N ms between requests")
    ap.add_argument("--keep", action="store_true", help="keep the replicas (in the temporary folder) and print it")
    args = ap.parse_args()
    if args.runs < 1 or args.connections < 1 or args.duration <= 0:
        ap.error("--runs, --connections and --duration must be positive")
    multiples = [int(x) for x in args.multiples.split(",") if x.strip()]
    if not multiples or min(multiples) < 1:
        ap.error("--multiples: positive integers, e.g. 1,10")
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # children must not inherit a blocked SIGTERM

    if shutil.which("wrk") is None:
        raise BenchFailure("wrk is not installed: apt-get install wrk")
    data_root = Path(os.environ.get("EHR_SYNC_FHIR_DATA", REPO.parent / "shared" / "fhir-data"))
    src = (data_root / args.set).resolve()
    if not (src / "load_order.txt").exists():
        raise BenchFailure(f"no data set at {src} (set EHR_SYNC_FHIR_DATA)")
    types = [t for t in (src / "load_order.txt").read_text().split() if t]
    for b in (DAEMON_BIN, SYNCCTL_BIN):
        if not b.exists():
            raise BenchFailure(f"{b} is missing: swift build -c release --scratch-path .build-release "
                               "--product ehr-syncd (and syncctl); make bench-read does it")

    cleanup: list = []
    work = Path(tempfile.mkdtemp(prefix="ehr-sync-bench-read."))
    try:
        logs = CACHE / "read-logs" / time.strftime("%Y%m%d-%H%M%S")
        logs.mkdir(parents=True)
        # Copies: a rebuild of .build-release during the benchmark cannot mix binaries.
        daemon_bin, syncctl = work / "ehr-syncd", work / "syncctl"
        shutil.copy2(DAEMON_BIN, daemon_bin)
        shutil.copy2(SYNCCTL_BIN, syncctl)
        version = subprocess.run([str(daemon_bin), "--version"], capture_output=True, text=True).stdout.strip()
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
        info(f"ehr-syncd {version} (binary built {time.ctime(DAEMON_BIN.stat().st_mtime)}, tree {rev}); logs in {logs}")
        info(f"load: wrk, 1 thread, {args.connections} connections; latency runs pause 0..{args.think_ms} ms "
             f"between requests, saturation runs none; {args.runs} x {args.duration:g} s per scenario and load")
        info(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine skews timings)")
        headline = {}
        for copies in multiples:
            suffix = "" if copies == 1 else f" ({copies}x)"
            label = f"{copies}x"
            set_dir = CACHE / f"read-{copies}x-from-{args.set}"
            done = build_set(src, set_dir, copies)
            info(f"{label}: {sum(done['counts'].values())} resources, {done['counts'].get('Patient', 0)} patients")
            figures = bench_set(args, label, suffix, set_dir, types, daemon_bin, syncctl, work, logs, cleanup)
            headline[copies] = figures
            for fn in reversed(cleanup):
                fn()
            cleanup.clear()
        info(f"load average at the end {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")
        result("bench-read total", time.monotonic() - started, "s", 0)
        # The headline: summary p99 against the no-work baseline under the same load, the lowest multiple last.
        for copies in sorted(headline, key=lambda c: (c == min(headline), c)):
            f = headline[copies]
            suffix = "" if copies == 1 else f" ({copies}x)"
            result(f"summary p99 ratio vs no-work baseline{suffix}", f["summary"]["p99"] / f["baseline"]["p99"], "", 1)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                info(f"cleanup failed: {e}")
        if args.keep:
            info(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as e:
        print(f"bench-read: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench-read: interrupted; processes stopped and temporary folders removed", file=sys.stderr)
        sys.exit(130)
