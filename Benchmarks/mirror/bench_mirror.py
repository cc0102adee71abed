#!/usr/bin/env python3
"""make bench-mirror: how fast ehr-syncd mirrors a practice, against a baseline bulk client, and its memory at 1M.

1. Mirror of `medium` (75 757 resources) served by sekmet-fhir (Tests/harness): `ehr-syncd --once` into a fresh
   encrypted replica. Wall time, the daemon's CPU (user+sys from wait4) and the server's CPU over the same
   interval (utime+stime of sekmet's process group from /proc).
2. Baseline in the same run, against the same server: `smart-fetch export --no-default-filters` (PyPI
   smart-fetch==1.0.3, installed into .build-venv/ from requirements.txt next to this file).
   smart-fetch can only *export* the Patient-compartment types of its own list (`--type` refuses others);
   its default hydration then reads the Practitioners, Organizations, Locations, Medications, ... that
   those resources reference. So the ratio compares like with like: the daemon is run a second time with
   `resource_types` = exactly the types smart-fetch's output contains (learnt from an untimed warm-up run of
   smart-fetch). The daemon's full-set figures (`mirror: ...`) are reported separately.
   Daemon and smart-fetch runs alternate (--runs rounds of smart-fetch, daemon on its types, daemon on all
   types; fresh state/output each run); medians are reported.
3. Peak RSS at 1M: a 1 000 000-resource NDJSON set generated from `medium` with fresh ids (cached in
   <repo>/.build-bench/), served by bulk_server.py (a minimal Bulk Data server: loading sekmet with it would
   take about half an hour and 12 GB), mirrored by `ehr-syncd --once` while /proc/<pid>/status is sampled
   every 50 ms.
4. Requests of one idle incremental cycle with types discovered (nothing pinned): through the server's
   system `_history` (`idle cycle requests (system history)`), and patient by patient as on a server
   without `_history` or whole-type searches (`[sync] strategy = "per-patient"`: one
   `Patient/[id]/$everything?_since=` a patient, plus the shared types' `_lastUpdated` searches, in a round
   of every patient; and between rounds, when only the patients that matter now are asked). Counted
   from the daemon's own debug `http` lines, the CapabilityStatement (read once a process) left out.

Output: `name: value unit` lines on stdout, the headline ratio last; progress and notes go to stderr.
Only counts and timings are printed, never resource content. Daemon logs (no patient data by design)
are kept in <repo>/.build-bench/mirror-logs/<time>/ for reading afterwards.

Usage: bench_mirror.py [--set medium] [--runs 3] [--skip-1m] [--settle 125]
(ehr-syncd must be built first: `swift build -c release --scratch-path .build-release --product ehr-syncd`,
which `make bench-mirror` does.)
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = REPO / ".build-venv"
VENV_PY = VENV / "bin" / "python"
SMART_FETCH = VENV / "bin" / "smart-fetch"
REQUIREMENTS = HERE / "requirements.txt"
REQ_STAMP = VENV / ".bench-mirror-requirements.sha256"
HARNESS = REPO / "Tests" / "harness" / "sekmet_harness.py"
DAEMON_BIN = REPO / ".build-release" / "release" / "ehr-syncd"
BULK_SERVER = HERE / "bulk_server.py"
CACHE = REPO / ".build-bench"  # ignored by git (.gitignore: .build*/)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MILLION = 1_000_000


def info(msg: str) -> None:
    """Progress and notes: stderr, so stdout stays `name: value unit` lines."""
    print(f"[bench-mirror {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def result(name: str, value: float, unit: str = "", digits: int = 1) -> None:
    print(f"{name}: {value:.{digits}f}{' ' + unit if unit else ''}", flush=True)


class BenchFailure(Exception):
    pass


# ------------------------------------------------------------------ cleanup (also on Ctrl-C / SIGTERM)

class Cleanup:
    """Processes and folders to remove on exit, newest first, whatever the exit path."""

    def __init__(self):
        self.actions: list[tuple[str, callable]] = []

    def add(self, label: str, fn) -> None:
        self.actions.append((label, fn))

    def run(self) -> None:
        # A second Ctrl-C or SIGTERM must not abort the cleanup half-way (stopping sekmet takes a few seconds).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while self.actions:
            label, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning up the rest
                info(f"cleanup of {label} failed: {e}")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM one child we started (by its pid), SIGKILL after the timeout."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt  # same path as Ctrl-C: the finally blocks clean up


# ------------------------------------------------------------------ venv: sekmet (harness) + smart-fetch

def ensure_venv() -> None:
    """The harness creates .build-venv (sekmet); we add smart-fetch's pinned set when requirements.txt changed."""
    r = subprocess.run([sys.executable, str(HARNESS), "ensure-venv"], capture_output=True, text=True)
    if r.returncode:
        raise BenchFailure(f"sekmet_harness ensure-venv failed:\n{r.stderr[-2000:]}")
    want = hashlib.sha256(REQUIREMENTS.read_bytes() + f"\npython {sys.version_info[:2]}".encode()).hexdigest()
    lock_path = Path(tempfile.gettempdir()) / f"ehr-sync-bench-mirror-venv-{hashlib.sha1(str(VENV).encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs: one installs, the others wait
        if SMART_FETCH.exists() and REQ_STAMP.exists() and REQ_STAMP.read_text().strip() == want:
            return
        info("installing smart-fetch (Benchmarks/mirror/requirements.txt) into .build-venv")
        r = subprocess.run([str(VENV_PY), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                            "-r", str(REQUIREMENTS)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode:
            raise BenchFailure(f"pip install -r {REQUIREMENTS} failed:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
        REQ_STAMP.write_text(want + "\n")


# ------------------------------------------------------------------ CPU and memory accounting

def group_cpu_seconds(pgid: int) -> float:
    """utime+stime (+ reaped children's) of every live process in a process group, from /proc/<pid>/stat.

    sekmet is started by the harness in its own session, so its pid is the group id; uvicorn workers,
    if any, are in the same group."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        # fields[0] is state (field 3 of stat(5)): pgrp = [2], utime/stime/cutime/cstime = [11..14]
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


class RSSSampler(threading.Thread):
    """Samples /proc/<pid>/status every 50 ms: the highest VmRSS seen and the last VmHWM (kernel's peak)."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.max_rss_kib = 0
        self.hwm_kib = 0
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        path = f"/proc/{self.pid}/status"
        while not self.stop_event.is_set():
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.max_rss_kib = max(self.max_rss_kib, int(line.split()[1]))
                        elif line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
                self.samples += 1
            except (OSError, ValueError, IndexError):
                pass  # exiting (or a zombie without Vm* lines)
            self.stop_event.wait(self.interval)


def run_measured(cmd: list[str], log: Path, env: dict | None = None, sample_rss: bool = False,
                 server_pgid: int | None = None) -> dict:
    """Runs cmd to completion: wall time, its CPU (wait4 rusage), peak RSS, and the server group's CPU."""
    server_before = group_cpu_seconds(server_pgid) if server_pgid else 0.0
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        sampler = RSSSampler(proc.pid) if sample_rss else None
        if sampler:
            sampler.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)  # this child's own rusage (not the RUSAGE_CHILDREN total)
        except BaseException:
            stop_process(proc)
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if sampler:
        sampler.stop_event.set()
        sampler.join()
    server_cpu = group_cpu_seconds(server_pgid) - server_before if server_pgid else 0.0
    return {
        "rc": proc.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "server_cpu": server_cpu,
        # ru_maxrss is the kernel's peak RSS of the child in KiB (the final VmHWM); the sampler is a cross-check
        "peak_rss_kib": max(ru.ru_maxrss, sampler.hwm_kib if sampler else 0, sampler.max_rss_kib if sampler else 0),
        "rss_samples": sampler.samples if sampler else 0,
    }


# ------------------------------------------------------------------ ehr-syncd runs

def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_daemon_config(folder: Path, base_url: str, types: list[str] | None, sync_extra: str = "") -> Path:
    """Config + key like scripts/demo.sh: 32 random bytes base64 in a 0600 file, fresh state dir."""
    folder.mkdir(parents=True)
    key = folder / "replica.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    cfg = folder / "ehr-sync.toml"
    cfg.write_text(
        "[ehr]\n"
        f"base_url = {toml_str(base_url)}\n"
        "requests_per_second = 1000\n"
        "[sync]\n"
        + (f"resource_types = [{', '.join(toml_str(t) for t in types)}]\n" if types is not None else "")
        + sync_extra
        + "[replica]\n"
        f"state_dir = {toml_str(str(folder / 'state'))}\n"
        "[key]\n"
        f"file = {toml_str(str(key))}\n"
        "[control]\n"
        f"socket = {toml_str(str(folder / 'control.sock'))}\n")
    return cfg


LOG_LEVEL_RE = re.compile(r"^\S+ (trace|debug|info|notice|warning|error|critical) ", re.M)


def run_daemon(daemon: Path, work: Path, logs: Path, label: str, base_url: str, types: list[str],
               server_pgid: int | None, sample_rss: bool = False) -> dict:
    folder = work / label
    cfg = write_daemon_config(folder, base_url, types)
    log = logs / f"{label}.log"
    info(f"{label}: ehr-syncd --once, {len(types)} types")
    r = run_measured([str(daemon), "--config", str(cfg), "--once"], log, sample_rss=sample_rss,
                     server_pgid=server_pgid)
    text = log.read_text(errors="replace")
    m = re.search(r"resources=(\d+) .*initial sync complete", text)
    r["resources"] = int(m.group(1)) if m else None
    levels = {}
    for lv in LOG_LEVEL_RE.findall(text):
        levels[lv] = levels.get(lv, 0) + 1
    r["log_levels"] = levels
    r["state_bytes"] = sum(p.stat().st_size for p in (folder / "state").glob("*") if p.is_file())
    # Time of each phase from the daemon's own log (second resolution): export vs the incremental pass.
    stamps = re.findall(r"^(\S+) \S+ ehr-syncd: .*?\[\S+\] (.+)$", text, re.M)
    r["phases"] = [(s, msg) for s, msg in stamps
                   if msg in ("bulk export started", "initial sync complete", "incremental cycle", "stopped")]
    shutil.rmtree(folder, ignore_errors=True)  # the replica is not needed any more (can be ~1 GB at 1M)
    if r["rc"] != 0:
        tail = "\n".join(text.splitlines()[-15:])  # the daemon's log carries no patient data by design
        raise BenchFailure(f"{label}: ehr-syncd exited with {r['rc']} after {r['wall']:.1f} s; log {log}:\n{tail}")
    noisy = {k: v for k, v in levels.items() if k in ("warning", "error", "critical")}
    info(f"{label}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s cpu, {r['resources']} resources, "
         f"peak rss {r['peak_rss_kib'] / 1024:.0f} MB" + (f", log {noisy}" if noisy else ""))
    return r


HTTP_LINE_RE = re.compile(r"^\S+ debug ehr-syncd: (.*)\[SyncEngine\] http$", re.M)


def idle_cycle_requests(daemon: Path, work: Path, logs: Path, label: str, base_url: str, strategy: str,
                        patient_round: int = 900) -> int:
    """Requests of one idle incremental cycle: types discovered (nothing pinned), a first
    `--once` makes the mirror (not counted), a second one at debug level is the idle cycle
    (its requests counted from the daemon's own `http` log lines)."""
    folder = work / label
    cfg = write_daemon_config(folder, base_url, None,
                              f"strategy = {toml_str(strategy)}\npatient_round = {patient_round}\n")
    first = run_measured([str(daemon), "--config", str(cfg), "--once"], logs / f"{label}-initial.log")
    if first["rc"] != 0:
        raise BenchFailure(f"{label}: the first copy failed; see {logs / f'{label}-initial.log'}")
    log = logs / f"{label}-idle.log"
    r = run_measured([str(daemon), "--config", str(cfg), "--once", "--log-level", "debug"], log)
    shutil.rmtree(folder, ignore_errors=True)
    if r["rc"] != 0:
        raise BenchFailure(f"{label}: the idle cycle failed; see {log}")
    # The CapabilityStatement is read once a process: a running daemon's cycles do not ask for it.
    count = sum(1 for line in HTTP_LINE_RE.findall(log.read_text(errors="replace")))
    # (The client names that route "other".)
    count -= len(re.findall(r"route=other .*\[SyncEngine\] http$", log.read_text(errors="replace"), re.M))
    info(f"{label}: idle cycle {count} requests")
    return count


# ------------------------------------------------------------------ smart-fetch runs

def smart_fetch_types(set_types: list[str]) -> list[str]:
    """The data set's types that smart-fetch will export (its `--type` accepts only its PATIENT_TYPES)."""
    r = subprocess.run([str(VENV_PY), "-c", "import json, smart_fetch.resources as r; print(json.dumps(r.PATIENT_TYPES))"],
                       capture_output=True, text=True, check=True)
    accepted = set(json.loads(r.stdout))
    return [t for t in set_types if t in accepted]


def count_output(folder: Path) -> dict[str, int]:
    """Resources per type in a smart-fetch output folder (its export subfolder, gzipped or plain NDJSON)."""
    counts: dict[str, int] = {}
    # <folder>/001.<date>/<Type>.<001|referenced|searched>.ndjson[.gz], plus its own log.ndjson (not data)
    for path in folder.glob("*/*.ndjson*"):
        rtype = path.name.split(".", 1)[0]
        if not re.match(r"^[A-Z][A-Za-z]+$", rtype):
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            counts[rtype] = counts.get(rtype, 0) + sum(1 for line in f if line.strip())
    return counts


def run_smart_fetch(work: Path, logs: Path, label: str, base_url: str, types: list[str], server_pgid: int) -> dict:
    out = work / label
    log = logs / f"{label}.log"
    cmd = [str(SMART_FETCH), "export", "--fhir-url", base_url, "--no-default-filters",
           "--type", ",".join(types), str(out)]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"}
    info(f"{label}: smart-fetch export, --type with {len(types)} types")
    r = run_measured(cmd, log, env=env, server_pgid=server_pgid)
    r["counts"] = count_output(out)
    r["resources"] = sum(r["counts"].values())
    shutil.rmtree(out, ignore_errors=True)
    if r["rc"] != 0:
        raise BenchFailure(f"{label}: smart-fetch exited with {r['rc']}; see {log}")
    info(f"{label}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s cpu, {r['resources']} resources "
         f"in {len(r['counts'])} types")
    return r


# ------------------------------------------------------------------ sekmet (through the harness)

def harness(*args: str) -> dict:
    r = subprocess.run([str(VENV_PY), str(HARNESS), *args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode:
        raise BenchFailure(f"sekmet_harness {args[0]} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the 1M data set

PLACEHOLDER = "~K~"  # '~' is not allowed in FHIR ids, so it cannot clash with data
REF_RE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
GEN_VERSION = "1"  # bump when the generated format changes (invalidates the cache)


def source_fingerprint(src: Path, total: int) -> str:
    h = hashlib.sha256(f"v{GEN_VERSION} total={total}".encode())
    for p in sorted(src.glob("*.ndjson")) + [src / "load_order.txt"]:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


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


def build_million_set(src: Path, dest: Path, total: int = MILLION) -> dict[str, int]:
    """Copies of every resource of `src` with ids and references suffixed `-k` (copy k), up to `total`.

    Each resource gets meta.versionId "1" and one meta.lastUpdated, as a server's export would carry.
    The last copy is partial, spread over the types in proportion to their size. Reused when present."""
    fingerprint = source_fingerprint(src, total)
    marker = dest / "done.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("fingerprint") == fingerprint:
            info(f"1M set: reusing {dest}")
            return done["counts"]
    t0 = time.monotonic()
    info(f"1M set: generating {total} resources from {src.name} into {dest} (once; cached)")
    shutil.rmtree(dest, ignore_errors=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    types = [t for t in (src / "load_order.txt").read_text().split() if t]
    last_updated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    templates: dict[str, list[str]] = {}
    for rtype in types:
        rows = []
        with open(src / f"{rtype}.ndjson", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                if PLACEHOLDER in line:
                    raise BenchFailure(f"{rtype}.ndjson contains the placeholder {PLACEHOLDER!r}")
                obj = json.loads(line)
                if not ID_RE.match(obj.get("id", "")) or len(obj["id"]) + 1 + len(str(total)) > 64:
                    raise BenchFailure(f"{rtype}.ndjson: an id would not stay a valid FHIR id with a suffix")
                obj["id"] += PLACEHOLDER
                meta = obj.setdefault("meta", {})
                meta["versionId"] = "1"
                meta["lastUpdated"] = last_updated
                tag_references(obj)
                rows.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
        templates[rtype] = rows
    n = sum(len(r) for r in templates.values())
    full, rest = divmod(total, n)
    # The partial copy: floor of each type's share, then the leftovers to the largest remainders.
    share = {t: len(templates[t]) * rest / n for t in types}
    take = {t: int(share[t]) for t in types}
    for t in sorted(types, key=lambda t: share[t] - take[t], reverse=True)[: rest - sum(take.values())]:
        take[t] += 1
    counts: dict[str, int] = {}
    for rtype in types:
        rows = templates[rtype]
        with open(tmp / f"{rtype}.ndjson", "w", encoding="utf-8", newline="\n") as f:
            for k in range(full + 1):
                part = rows if k < full else rows[: take[rtype]]
                if part:
                    f.write("\n".join(r.replace(PLACEHOLDER, f"-{k}") for r in part))
                    f.write("\n")
                counts[rtype] = counts.get(rtype, 0) + len(part)
    assert sum(counts.values()) == total, counts
    (tmp / ".counts.json").write_text(json.dumps(
        {t: {"size": (tmp / f"{t}.ndjson").stat().st_size, "count": c} for t, c in counts.items()}))
    os.rename(tmp, dest)
    (dest / "done.json").write_text(json.dumps({"fingerprint": fingerprint, "counts": counts}))
    os.sync()  # no writeback of 2 GB competing with the timed runs
    info(f"1M set: {sum(counts.values())} resources, "
         f"{sum(p.stat().st_size for p in dest.glob('*.ndjson')) / 1e9:.2f} GB, {time.monotonic() - t0:.0f} s")
    return counts


# ------------------------------------------------------------------ the benchmark

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="medium", help="data set under $EHR_SYNC_FHIR_DATA or ../shared/fhir-data")
    ap.add_argument("--runs", type=int, default=3, help="rounds of (smart-fetch, daemon, daemon all types)")
    ap.add_argument("--skip-1m", action="store_true", help="skip the 1M peak-RSS part")
    ap.add_argument("--settle", type=float, default=125.0,
                    help="seconds to let pass after loading before the first timed run: the daemon's incremental "
                         "pass re-reads `overlap` (120 s) of server history, which right after a load would "
                         "be the load itself")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # children must not inherit a blocked SIGTERM

    data_root = Path(os.environ.get("EHR_SYNC_FHIR_DATA", REPO.parent / "shared" / "fhir-data"))
    set_dir = (data_root / args.set).resolve()
    if not (set_dir / "load_order.txt").exists():
        raise BenchFailure(f"no data set at {set_dir} (set EHR_SYNC_FHIR_DATA)")
    set_types = [t for t in (set_dir / "load_order.txt").read_text().split() if t]
    if not DAEMON_BIN.exists():
        raise BenchFailure(f"{DAEMON_BIN} is missing: swift build -c release --scratch-path .build-release "
                           "--product ehr-syncd (make bench-mirror does it)")
    ensure_venv()

    cleanup = Cleanup()
    try:
        work = Path(tempfile.mkdtemp(prefix="ehr-sync-bench-mirror."))
        cleanup.add("work dir", lambda: shutil.rmtree(work, ignore_errors=True))
        logs = CACHE / "mirror-logs" / time.strftime("%Y%m%d-%H%M%S")
        logs.mkdir(parents=True)
        # Every run uses this copy: a rebuild of .build-release during the benchmark cannot mix binaries.
        daemon = work / "ehr-syncd"
        shutil.copy2(DAEMON_BIN, daemon)
        version = subprocess.run([str(daemon), "--version"], capture_output=True, text=True).stdout.strip()
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
        info(f"ehr-syncd {version} (binary built {time.ctime(DAEMON_BIN.stat().st_mtime)}, tree {rev}); logs in {logs}")
        info(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine skews timings)")

        # ---- 1+2: sekmet with the data set
        server = harness("start", "--data-dir", str(work / "sekmet"))
        cleanup.add("sekmet", lambda: harness("stop", "--pid", str(server["pid"])))
        base_url, pgid = server["base_url"], server["pid"]
        info(f"sekmet on {base_url}; loading {args.set}")
        loaded = harness("load", "--base-url", base_url, "--set", str(set_dir))
        load_end = time.monotonic()
        result(f"sekmet load of {args.set} (not counted)", loaded["elapsed_s"], "s")
        expected = loaded["total"]

        if not args.skip_1m:  # do the (cached) generation while the server's history settles
            million_dir = CACHE / f"mirror-1m-from-{args.set}"
            million_counts = build_million_set(set_dir, million_dir)
        wait = args.settle - (time.monotonic() - load_end)
        if wait > 0:
            info(f"waiting {wait:.0f} s so that the load falls outside the daemon's 120 s history overlap")
            time.sleep(wait)

        # Warm-up, not counted: the first export after the load is slower for whoever comes first (sekmet's
        # SQLite pages not yet cached). It also tells which types smart-fetch's output holds: the types it
        # exports plus those its hydration fetched by reference. The daemon's comparison runs mirror those.
        sf_types = smart_fetch_types(set_types)
        warm = run_smart_fetch(work, logs, "smart-fetch-warm-up", base_url, sf_types, pgid)
        common_types = [t for t in set_types if warm["counts"].get(t)]
        missing = [t for t in set_types if t not in common_types]
        info(f"smart-fetch output has {len(common_types)} of the set's {len(set_types)} types; "
             f"it cannot fetch: {', '.join(missing)}")
        sf_runs, same_runs, full_runs = [], [], []
        for i in range(1, args.runs + 1):
            sf_runs.append(run_smart_fetch(work, logs, f"smart-fetch-{i}", base_url, sf_types, pgid))
            same_runs.append(run_daemon(daemon, work, logs, f"daemon-same-types-{i}", base_url, common_types, pgid))
            full_runs.append(run_daemon(daemon, work, logs, f"daemon-all-types-{i}", base_url, set_types, pgid))
            if full_runs[-1]["resources"] != expected:
                info(f"WARNING: the replica holds {full_runs[-1]['resources']} resources, {expected} were loaded")

        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        full_wall = med(full_runs, "wall")
        result("mirror", expected / full_wall, "resources/s", 0)
        result("mirror daemon cpu", med(full_runs, "cpu"), "s")
        result("mirror server cpu", med(full_runs, "server_cpu"), "s")
        result("mirror wall", full_wall, "s")
        result("mirror daemon peak rss", med(full_runs, "peak_rss_kib") / 1024, "MB", 0)
        result(f"mirror wall, smart-fetch's {len(common_types)} types", med(same_runs, "wall"), "s")
        result(f"mirror daemon cpu, smart-fetch's {len(common_types)} types", med(same_runs, "cpu"), "s")
        result(f"mirror server cpu, smart-fetch's {len(common_types)} types", med(same_runs, "server_cpu"), "s")
        result("smart-fetch cpu", med(sf_runs, "cpu"), "s")
        result("smart-fetch server cpu", med(sf_runs, "server_cpu"), "s")
        result("smart-fetch wall", med(sf_runs, "wall"), "s")
        ratio = med(same_runs, "wall") / med(sf_runs, "wall")
        info("per run (wall s): smart-fetch " + ", ".join(f"{r['wall']:.1f}" for r in sf_runs)
             + "; daemon same types " + ", ".join(f"{r['wall']:.1f}" for r in same_runs)
             + "; daemon all types " + ", ".join(f"{r['wall']:.1f}" for r in full_runs))
        info("daemon phases, last all-types run: " + "; ".join(f"{s[11:19]} {m}" for s, m in full_runs[-1]["phases"]))
        # One idle cycle, types discovered: with the server's system _history (one request), and patient by
        # patient as on a server without _history or whole-type searches (Patient/$everything?_since= for each).
        patients = sum(1 for line in (set_dir / "Patient.ndjson").open() if line.strip())
        idle_history = idle_cycle_requests(daemon, work, logs, "idle-history", base_url, "auto")
        # A round of every patient (patient_round = 0: every cycle is one), and a cycle between rounds (only the
        # patients with an appointment today or tomorrow, or opened in the viewer: none here).
        idle_patient = idle_cycle_requests(daemon, work, logs, "idle-per-patient", base_url, "per-patient", 0)
        idle_between = idle_cycle_requests(daemon, work, logs, "idle-between-rounds", base_url, "per-patient", 900)
        result("idle cycle requests (system history)", idle_history, "", 0)
        result(f"idle cycle requests (per-patient, {patients} patients)", idle_patient, "", 0)
        result("idle cycle requests (per-patient, between rounds)", idle_between, "", 0)
        # sekmet is not needed any more: free its CPU and memory before the 1M run (the cleanup's second
        # stop then answers "not-running").
        harness("stop", "--pid", str(pgid))

        # ---- 3: 1M resources through the minimal Bulk Data server
        if not args.skip_1m:
            with open(logs / "bulk-server.log", "ab") as blog:
                # Own process group (= its pid), so that its CPU can be read like sekmet's.
                bulk = subprocess.Popen([sys.executable, str(BULK_SERVER), "--dir", str(million_dir)],
                                        stdout=subprocess.PIPE, stderr=blog, stdin=subprocess.DEVNULL, text=True,
                                        start_new_session=True)
            cleanup.add("bulk server", lambda: stop_process(bulk))
            ready = json.loads(bulk.stdout.readline() or "{}")
            if "base_url" not in ready:
                raise BenchFailure(f"bulk_server.py did not start; see {logs / 'bulk-server.log'}")
            r = run_daemon(daemon, work, logs, "daemon-1m", ready["base_url"], set_types, bulk.pid, sample_rss=True)
            if r["resources"] != MILLION:
                info(f"WARNING: the 1M replica holds {r['resources']} resources")
            stop_process(bulk)
            info(f"1M: {r['rss_samples']} RSS samples; replica {r['state_bytes'] / 1e9:.2f} GB; "
                 f"bulk server cpu {r['server_cpu']:.1f} s; phases: "
                 + "; ".join(f"{s[11:19]} {m}" for s, m in r["phases"]))
            result("peak rss at 1M", r["peak_rss_kib"] / 1024, "MB", 0)  # MB = MiB here (VmHWM is in KiB)
            result("1M import wall", r["wall"], "s")
            result("1M import", MILLION / r["wall"], "resources/s", 0)
            result("1M daemon cpu", r["cpu"], "s")

        info(f"load average at the end {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")
        result("bench-mirror total", time.monotonic() - started, "s", 0)
        result("mirror time ratio vs smart-fetch", ratio, "", 2)
        return 0
    finally:
        cleanup.run()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as e:
        print(f"bench-mirror: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench-mirror: interrupted; servers stopped and temporary folders removed", file=sys.stderr)
        sys.exit(130)
