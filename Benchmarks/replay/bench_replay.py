#!/usr/bin/env python3
"""make bench-replay: how fast ehr-syncd replays queued local changes, against a plain client sending the same writes.

1. sekmet-fhir (Tests/harness) with the `small` practice loaded, and a snapshot of its store so that every round
   starts from the same server state (`harness restore`).
2. `ehr-syncd --once` mirrors it into a fresh encrypted replica.
3. The daemon runs again (not --once) with `[ehr] base_url` on a dead loopback port and `[local_api]` enabled;
   --changes (10 000) writes go through the local API into the outbox: a deterministic (seeded) mix of creates
   (new Patients, Observations and Conditions on existing and on new patients, the latter referencing the new
   Patient by the local id of its Location header), updates of mirrored Observations (status or a note) and
   Conditions (a note), and deletes of mirrored Observations and Procedures. The daemon is stopped (SIGTERM) and
   its state folder kept as the template of every replay round.
4. Rounds (--rounds, alternating which goes first), each from the restored snapshot:
   - replay: a copy of the template replica, `ehr-syncd --once` against sekmet (the incremental pull, then the
     replay). The replay time is `elapsed_s` of the daemon's `replay pass` log line; the --once wall is reported
     too. `[replay] provenance = false`, `start_jitter = 0`, `concurrency` = --concurrency.
   - plain client: the same writes with http.client keep-alive connections, as many as the daemon's concurrency:
     the new Patients first, then everything else in queue order, references to new Patients rewritten to their
     server ids; creates as POST (with one `urn:uuid:` identifier in system urn:ietf:rfc:3986, as the daemon
     adds), updates as PUT, deletes as DELETE, no conditional headers.
   After each run (not timed) the server is read back: every queued create exactly once with the expected content,
   every update's content, every delete gone; and, after a replay, the urn:ietf:rfc:3986 identifier values carried
   by more than one resource (duplicates).

Output: `name: value unit` lines on stdout, medians over the rounds, the ratio and then `replay duplicates: N`
last; progress and notes on stderr. Only counts and timings are printed, no resource content. Daemon logs (no
patient data by design) are kept in <repo>/.build-bench/replay-logs/<time>/.

Usage: bench_replay.py [--set small] [--changes 10000] [--rounds 3] [--concurrency 2] [--seed 1]
(ehr-syncd must be built first: `swift build -c release --scratch-path .build-release --product ehr-syncd`,
which `make bench-replay` does.) Standard library only.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_PY = REPO / ".build-venv" / "bin" / "python"
HARNESS = REPO / "Tests" / "harness" / "sekmet_harness.py"
DAEMON_BIN = REPO / ".build-release" / "release" / "ehr-syncd"
CACHE = REPO / ".build-bench"  # ignored by git (.gitignore: .build*/)
CLK_TCK = os.sysconf("SC_CLK_TCK")

BENCH_SYSTEM = "https://ehr-sync.org/bench/replay"  # our own identifier on every created resource: c<n>
CLIENT_ID_SYSTEM = "urn:ietf:rfc:3986"  # the daemon's client identifier (one urn:uuid: per replayed create)
PLACEHOLDER = "~P"  # "Patient/~P<n>" in a template: the new Patient n ('~' cannot occur in a FHIR id)
TOUCHED_TYPES = ("Patient", "Observation", "Condition", "Procedure")


def info(msg: str) -> None:
    """Progress and notes: stderr, so stdout stays `name: value unit` lines."""
    print(f"[bench-replay {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while self.actions:
            label, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning up the rest
                info(f"cleanup of {label} failed: {e}")


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM one child we started (by its pid), SIGKILL after the timeout."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        info(f"pid {proc.pid} did not stop in {timeout:.0f} s: SIGKILL")
        proc.kill()
        proc.wait(5)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt  # same path as Ctrl-C: the finally blocks clean up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime (+ reaped children's) of every live process in a process group (sekmet's: its pid)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


# ------------------------------------------------------------------ sekmet (through the harness)

class Sekmet:
    def __init__(self, work: Path):
        self.data_dir = work / "sekmet"
        self.snapshot_dir = work / "sekmet-snapshot"
        self.pid: int | None = None
        self.base_url = ""

    @staticmethod
    def harness(*args: str) -> dict:
        r = subprocess.run([str(VENV_PY), str(HARNESS), *args], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode:
            raise BenchFailure(f"sekmet_harness {args[0]} failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        s = self.harness("start", "--data-dir", str(self.data_dir))
        self.pid, self.base_url = s["pid"], s["base_url"]

    def load(self, set_dir: Path) -> dict:
        return self.harness("load", "--base-url", self.base_url, "--set", str(set_dir))

    def snapshot(self) -> None:
        self.harness("snapshot", "--data-dir", str(self.data_dir), "--dest", str(self.snapshot_dir))

    def restore(self) -> None:
        s = self.harness("restore", "--data-dir", str(self.data_dir), "--snapshot", str(self.snapshot_dir),
                         "--pid", str(self.pid))
        self.pid = s["pid"]
        if s["base_url"] != self.base_url:
            raise BenchFailure("sekmet came back on another port")

    def stop(self) -> None:
        if self.pid:
            self.harness("stop", "--pid", str(self.pid))
            self.pid = None

    def cpu(self) -> float:
        return group_cpu_seconds(self.pid) if self.pid else 0.0


# ------------------------------------------------------------------ HTTP (stdlib, keep-alive)

class Conn:
    """One keep-alive HTTP/1.1 connection to a base URL (`http://host:port/fhir`)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120):
        u = urlsplit(base_url)
        self.host, self.port, self.prefix = u.hostname, u.port, u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/fhir+json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        h = dict(self.headers)
        if body is not None:
            h["Content-Type"] = "application/fhir+json"
        if headers:
            h.update(headers)
        url = path if path.startswith("/") else f"{self.prefix}/{path}"
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, url, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2 or method not in ("GET",):
                    raise
        raise AssertionError("unreachable")

    def get_json(self, path: str) -> dict:
        status, _, data = self.request("GET", path)
        if status != 200:
            raise BenchFailure(f"GET {path.split('?')[0]}: HTTP {status}")
        return json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ------------------------------------------------------------------ the changes

OBS_CODES = [  # LOINC code, display, unit, low, high
    ("8867-4", "Heart rate", "/min", 50, 110), ("9279-1", "Respiratory rate", "/min", 10, 24),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.5), ("29463-7", "Body Weight", "kg", 40, 120),
    ("8302-2", "Body Height", "cm", 140, 200), ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65, 180),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 88, 100),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 17, 40),
]
COND_CODES = [  # SNOMED code, display
    ("38341003", "Hypertension"), ("44054006", "Diabetes mellitus type 2"), ("195662009", "Acute viral pharyngitis"),
    ("10509002", "Acute bronchitis"), ("444814009", "Viral sinusitis"), ("55822004", "Hyperlipidemia"),
    ("162864005", "Body mass index 30+ - obesity"), ("271737000", "Anemia"),
]
GIVEN = ["Ada", "Ben", "Cleo", "Dario", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lars"]
FAMILY = ["Bench", "Replay", "Outbox", "Queue", "Mirror", "Harbor", "Linden", "Moreau", "Novak", "Okafor"]


def read_ndjson(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def when(rng: random.Random) -> str:
    return (f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(7, 18):02d}:"
            f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}+00:00")


def build_changes(set_dir: Path, n: int, seed: int) -> list[dict]:
    """The writes, in queue order. Each: op (create|update|delete), type, id (update/delete), body (create/update;
    new Patients referenced as `Patient/~P<n>`), key (c<n> for creates), pkey (a new Patient's n), needs (the new
    Patient a create references), uuid (the client identifier the plain client adds to a create)."""
    rng = random.Random(seed)
    patients = [r["id"] for r in read_ndjson(set_dir / "Patient.ndjson")]
    observations = read_ndjson(set_dir / "Observation.ndjson")
    conditions = read_ndjson(set_dir / "Condition.ndjson")
    procedures = [r["id"] for r in read_ndjson(set_dir / "Procedure.ndjson")]
    rng.shuffle(observations)
    rng.shuffle(conditions)
    rng.shuffle(procedures)

    # The mix (of 10 000): 8 500 creates (250 Patients, 1 250 Observations and 250 Conditions on them, 5 400
    # Observations and 1 350 Conditions on existing Patients), 1 100 updates (800 Observations, 300 Conditions),
    # 400 deletes (250 Observations, 150 Procedures). Updates and deletes have distinct targets (no squashing).
    n_obs_upd = min(round(n * 0.08), len(observations) * 2 // 3)
    n_cond_upd = min(round(n * 0.03), len(conditions))
    n_obs_del = min(round(n * 0.025), len(observations) - n_obs_upd)
    n_proc_del = min(round(n * 0.015), len(procedures))
    n_creates = n - n_obs_upd - n_cond_upd - n_obs_del - n_proc_del
    n_pat = max(1, round(n_creates * 250 / 8500))
    n_obs_new, n_cond_new = 5 * n_pat, n_pat
    n_rest = max(0, n_creates - n_pat - n_obs_new - n_cond_new)
    n_obs_old = round(n_rest * 0.8)
    n_cond_old = n_rest - n_obs_old
    if n_pat + n_obs_new + n_cond_new + n_rest != n_creates:
        raise BenchFailure(f"--changes {n} is too small for the mix")

    counter = iter(range(1, 10 ** 9))
    changes: list[dict] = []

    def create(rtype: str, body: dict, **extra) -> dict:
        key = f"c{next(counter):05d}"
        body = {"resourceType": rtype, "identifier": [{"system": BENCH_SYSTEM, "value": key}], **body}
        c = {"op": "create", "type": rtype, "body": body, "key": key,
             "uuid": "urn:uuid:" + str(uuid.UUID(int=rng.getrandbits(128), version=4)), **extra}
        changes.append(c)
        return c

    def observation(subject: str) -> dict:
        code, display, unit, lo, hi = rng.choice(OBS_CODES)
        return {"status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "vital-signs", "display": "Vital signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                "subject": {"reference": subject}, "effectiveDateTime": when(rng),
                "valueQuantity": {"value": round(rng.uniform(lo, hi), 1), "unit": unit,
                                  "system": "http://unitsofmeasure.org", "code": unit}}

    def condition(subject: str) -> dict:
        code, display = rng.choice(COND_CODES)
        return {"clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item", "display": "Problem List Item"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}],
                         "text": display},
                "subject": {"reference": subject}, "onsetDateTime": when(rng), "recordedDate": when(rng)}

    for p in range(n_pat):
        create("Patient", {"active": True,
                           "name": [{"use": "official", "family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}],
                           "gender": rng.choice(["female", "male"]),
                           "birthDate": f"{rng.randint(1935, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"},
               pkey=p)
    for i in range(n_obs_new):
        p = i % n_pat
        create("Observation", observation(f"Patient/{PLACEHOLDER}{p}"), needs=p)
    for i in range(n_cond_new):
        p = i % n_pat
        create("Condition", condition(f"Patient/{PLACEHOLDER}{p}"), needs=p)
    for _ in range(n_obs_old):
        create("Observation", observation(f"Patient/{rng.choice(patients)}"))
    for _ in range(n_cond_old):
        create("Condition", condition(f"Patient/{rng.choice(patients)}"))
    for i, obs in enumerate(observations[:n_obs_upd]):
        body = json.loads(json.dumps(obs))
        if i % 2:
            body["status"] = "amended" if body.get("status") != "amended" else "corrected"
        else:
            body["note"] = body.get("note", []) + [{"text": f"Reviewed in bench-replay (u{i})"}]
        changes.append({"op": "update", "type": "Observation", "id": obs["id"], "body": body})
    for i, cond in enumerate(conditions[:n_cond_upd]):
        body = json.loads(json.dumps(cond))
        body["note"] = body.get("note", []) + [{"text": f"Followed up in bench-replay (u{i})"}]
        changes.append({"op": "update", "type": "Condition", "id": cond["id"], "body": body})
    for obs in observations[n_obs_upd:n_obs_upd + n_obs_del]:
        changes.append({"op": "delete", "type": "Observation", "id": obs["id"]})
    for pid in procedures[:n_proc_del]:
        changes.append({"op": "delete", "type": "Procedure", "id": pid})
    assert len(changes) == n, (len(changes), n)

    # Random order, except that a new Patient is created before anything referencing it.
    rng.shuffle(changes)
    ordered, created, by_pkey = [], set(), {c["pkey"]: c for c in changes if "pkey" in c}
    for c in changes:
        if "pkey" in c:
            if c["pkey"] not in created:
                created.add(c["pkey"])
                ordered.append(c)
            continue
        if "needs" in c and c["needs"] not in created:
            created.add(c["needs"])
            ordered.append(by_pkey[c["needs"]])
        ordered.append(c)
    assert len(ordered) == n
    return ordered


def body_bytes(change: dict, patient_ids: dict[int, str], client_id: bool) -> bytes:
    """The JSON sent: new Patients' placeholders replaced by their ids (local or server); for the plain client a
    create also carries its urn:uuid identifier, as the daemon adds it."""
    body = change["body"]
    if client_id and change["op"] == "create":
        body = {**body, "identifier": body["identifier"] + [{"system": CLIENT_ID_SYSTEM, "value": change["uuid"]}]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if "needs" in change:
        text = text.replace(f"Patient/{PLACEHOLDER}{change['needs']}", f"Patient/{patient_ids[change['needs']]}")
    return text.encode()


def summarize_mix(changes: list[dict]) -> str:
    counts: dict[str, int] = {}
    for c in changes:
        k = f"{c['op']} {c['type']}" + (" (on a new Patient)" if "needs" in c else "")
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


# ------------------------------------------------------------------ ehr-syncd

def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_config(path: Path, base_url: str, state: Path, key: Path, types: list[str], concurrency: int,
                 local_api: tuple[str, Path] | None = None) -> Path:
    text = ("[ehr]\n"
            f"base_url = {toml_str(base_url)}\n"
            "requests_per_second = 5000\n"
            "connect_timeout = 2\n"
            "[sync]\n"
            f"resource_types = [{', '.join(toml_str(t) for t in types)}]\n"
            # The replay rounds run long after the mirror: no history overlap to re-read (the load itself).
            "overlap = 0\n"
            "[replica]\n"
            f"state_dir = {toml_str(str(state))}\n"
            "[key]\n"
            f"file = {toml_str(str(key))}\n"
            "[control]\n"
            f"socket = {toml_str(str(path.parent / (path.stem + '.sock')))}\n"
            "[replay]\n"
            "provenance = false\n"
            "start_jitter = 0\n"
            f"concurrency = {concurrency}\n")
    if local_api:
        text += ("[local_api]\n"
                 f"listen = {toml_str(local_api[0])}\n"
                 f"token_file = {toml_str(str(local_api[1]))}\n")
    path.write_text(text)
    return path


def write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def run_once(daemon: Path, cfg: Path, log: Path, server: Sekmet) -> dict:
    """ehr-syncd --once to completion: wall, its CPU (wait4), sekmet's CPU over the same interval."""
    server_before = server.cpu()
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(daemon), "--config", str(cfg), "--once"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            stop_process(proc)
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    r = {"rc": proc.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "server_cpu": server.cpu() - server_before,
         "log": text}
    if r["rc"] != 0:
        tail = "\n".join(text.splitlines()[-20:])  # the daemon's log carries no patient data by design
        raise BenchFailure(f"ehr-syncd --once exited with {r['rc']} after {wall:.1f} s; log {log}:\n{tail}")
    return r


LOG_LEVEL_RE = re.compile(r"^\S+ (trace|debug|info|notice|warning|error|critical) ", re.M)


def log_levels(text: str) -> dict[str, int]:
    levels: dict[str, int] = {}
    for lv in LOG_LEVEL_RE.findall(text):
        levels[lv] = levels.get(lv, 0) + 1
    return levels


def parse_replay_pass(text: str) -> dict | None:
    for line in text.splitlines():
        if "replay pass" in line:
            fields = dict(re.findall(r"\b(elapsed_s|done|parked|conflicts|discarded|waiting)=([\d.]+)", line))
            if "elapsed_s" in fields:
                return {k: float(v) if k == "elapsed_s" else int(v) for k, v in fields.items()}
    return None


# ------------------------------------------------------------------ queueing through the local API

def queue_changes(daemon: Path, cfg: Path, log: Path, listen: str, token: str, changes: list[dict]) -> dict:
    """Starts the daemon (EHR unreachable), sends every change through the local API, stops it (SIGTERM)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(daemon), "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        api = Conn(f"http://{listen}/fhir", token=token, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchFailure(f"ehr-syncd exited with {proc.returncode} before its local API answered; "
                                   f"log {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            try:
                if api.request("GET", "metadata")[0] == 200:
                    break
            except OSError:
                api.close()
            if time.monotonic() > deadline:
                raise BenchFailure(f"the local API on {listen} did not answer in 60 s; log {log}")
            time.sleep(0.1)
        local_patients: dict[int, str] = {}
        want = {"create": 201, "update": 200, "delete": 204}
        t0 = time.perf_counter()
        for i, c in enumerate(changes):
            if c["op"] == "create":
                status, headers, data = api.request("POST", c["type"], body_bytes(c, local_patients, False))
            elif c["op"] == "update":
                status, headers, data = api.request("PUT", f"{c['type']}/{c['id']}", body_bytes(c, local_patients, False))
            else:
                status, headers, data = api.request("DELETE", f"{c['type']}/{c['id']}")
            if status != want[c["op"]]:
                raise BenchFailure(f"local API: change {i} ({c['op']} {c['type']}) answered HTTP {status}: "
                                   + summarize_outcome(data))
            if "pkey" in c:
                m = re.fullmatch(r"/fhir/Patient/([A-Za-z0-9\-.]{1,64})", headers.get("location", ""))
                if not m:
                    raise BenchFailure("local API: a create answered without a Location /fhir/Patient/<id>")
                local_patients[c["pkey"]] = m.group(1)
            if (i + 1) % 2000 == 0:
                info(f"queued {i + 1} changes ({(i + 1) / (time.perf_counter() - t0):.0f}/s)")
        elapsed = time.perf_counter() - t0
        api.close()
    finally:
        stop_process(proc, timeout=60)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        info(f"WARNING: the queueing daemon exited with {proc.returncode} after SIGTERM; log {log}")
    return {"elapsed": elapsed, "levels": log_levels(text)}


def summarize_outcome(data: bytes) -> str:
    """The OperationOutcome's diagnostics, with resource ids redacted."""
    try:
        issues = json.loads(data).get("issue", [])
        text = "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues)[:300]
    except (ValueError, AttributeError):
        text = f"{len(data)} bytes"
    return re.sub(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}", r"\1/<id>", text)


# ------------------------------------------------------------------ the plain client

def plain_client(base_url: str, changes: list[dict], concurrency: int, server: Sekmet) -> dict:
    """The same writes, `concurrency` keep-alive connections: new Patients first, then the rest in queue order."""
    patients = [c for c in changes if "pkey" in c]
    rest = [c for c in changes if "pkey" not in c]
    server_ids: dict[int, str] = {}
    errors: list[str] = []
    lock = threading.Lock()
    # The bodies that do not depend on a new Patient's server id are serialised before the clock starts.
    prepared = {id(c): body_bytes(c, {}, True) for c in changes if c["op"] != "delete" and "needs" not in c}
    want = {"create": (201,), "update": (200,), "delete": (200, 204)}

    def send(conn: Conn, c: dict) -> None:
        if c["op"] == "create":
            body = prepared.get(id(c)) or body_bytes(c, server_ids, True)
            status, headers, data = conn.request("POST", c["type"], body)
        elif c["op"] == "update":
            status, headers, data = conn.request("PUT", f"{c['type']}/{c['id']}", prepared[id(c)])
        else:
            status, headers, data = conn.request("DELETE", f"{c['type']}/{c['id']}")
        if status not in want[c["op"]]:
            with lock:
                errors.append(f"{c['op']} {c['type']}: HTTP {status}: {summarize_outcome(data)}")
            return
        if "pkey" in c:
            server_ids[c["pkey"]] = json.loads(data)["id"]

    def run_phase(items: list[dict]) -> None:
        cursor = iter(items)

        def worker(conn: Conn) -> None:
            while True:
                with lock:
                    c = next(cursor, None)
                if c is None:
                    return
                try:
                    send(conn, c)
                except Exception as e:  # recorded, reported after the run
                    with lock:
                        errors.append(f"{c['op']} {c['type']}: {type(e).__name__}: {e}")
                    conn.close()

        threads = [threading.Thread(target=worker, args=(conns[k],)) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    conns = [Conn(base_url) for _ in range(concurrency)]
    server_before = server.cpu()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    run_phase(patients)
    t1 = time.perf_counter()
    run_phase(rest)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        c.close()
    return {"wall": wall, "patients_wall": t1 - t0, "errors": errors, "server_cpu": server.cpu() - server_before,
            "cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)}


# ------------------------------------------------------------------ reading the server back

def fetch_all(base_url: str, rtype: str) -> list[dict]:
    conn = Conn(base_url)
    out: list[dict] = []
    path = f"{rtype}?_count=1000"
    while path:
        bundle = conn.get_json(path)
        out.extend(e["resource"] for e in bundle.get("entry", []) if "resource" in e)
        nxt = [link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"]
        path = ""
        if nxt:
            u = urlsplit(nxt[0])
            path = u.path + ("?" + u.query if u.query else "")
    conn.close()
    return out


def strip_for_compare(resource_: dict) -> dict:
    r = {k: v for k, v in resource_.items() if k not in ("meta", "id")}
    ids = [i for i in r.get("identifier", []) if i.get("system") != CLIENT_ID_SYSTEM]
    if ids:
        r["identifier"] = ids
    else:
        r.pop("identifier", None)
    return r


def verify(base_url: str, changes: list[dict], baseline: dict[str, int], replayed: bool) -> dict:
    """Reads back the touched types; counts what is not as expected and the client-identifier duplicates."""
    found = {t: fetch_all(base_url, t) for t in TOUCHED_TYPES}
    by_key: dict[str, list[dict]] = {}
    by_id: dict[tuple[str, str], dict] = {}
    uuid_count: dict[str, int] = {}
    for rtype, rows in found.items():
        for r in rows:
            by_id[(rtype, r["id"])] = r
            for ident in r.get("identifier", []):
                if ident.get("system") == BENCH_SYSTEM:
                    by_key.setdefault(ident.get("value"), []).append(r)
                elif ident.get("system") == CLIENT_ID_SYSTEM and str(ident.get("value", "")).startswith("urn:uuid:"):
                    uuid_count[ident["value"]] = uuid_count.get(ident["value"], 0) + 1
    duplicates = sum(1 for v in uuid_count.values() if v > 1)
    duplicate_resources = sum(v - 1 for v in uuid_count.values() if v > 1)
    # New Patients' server ids -> placeholders, so that the created content compares with the templates.
    patient_ref: dict[str, str] = {}
    for c in changes:
        if "pkey" in c and len(by_key.get(c["key"], [])) == 1:
            patient_ref[f"Patient/{by_key[c['key']][0]['id']}"] = f"Patient/{PLACEHOLDER}{c['pkey']}"

    def unmap(node):
        if isinstance(node, dict):
            return {k: (patient_ref.get(v, v) if k == "reference" and isinstance(v, str) else unmap(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [unmap(v) for v in node]
        return node

    problems: dict[str, int] = {}

    def bad(kind: str) -> None:
        problems[kind] = problems.get(kind, 0) + 1

    creates = {"Patient": 0, "Observation": 0, "Condition": 0, "Procedure": 0}
    deletes = dict.fromkeys(creates, 0)
    for c in changes:
        if c["op"] == "create":
            creates[c["type"]] += 1
            rows = by_key.get(c["key"], [])
            if not rows:
                bad("create missing")
                continue
            if len(rows) > 1:
                bad("create present more than once")
            r = rows[0]
            if r["resourceType"] != c["type"]:
                bad("create of the wrong type")
            elif unmap(strip_for_compare(r)) != strip_for_compare(c["body"]):
                bad("create content differs")
            n_ids = sum(1 for i in r.get("identifier", []) if i.get("system") == CLIENT_ID_SYSTEM)
            if n_ids != 1:
                bad(f"create with {n_ids} urn:ietf:rfc:3986 identifiers")
            if not replayed and not any(i.get("value") == c["uuid"] for i in r.get("identifier", [])):
                bad("create without its urn:uuid identifier")
        elif c["op"] == "update":
            r = by_id.get((c["type"], c["id"]))
            if r is None:
                bad("updated resource missing")
            elif strip_for_compare(r) != strip_for_compare(c["body"]):
                bad("update content differs")
        else:
            deletes[c["type"]] += 1
            if (c["type"], c["id"]) in by_id:
                bad("deleted resource still there")
    for rtype, rows in found.items():
        want = baseline[rtype] + creates[rtype] - deletes[rtype]
        if len(rows) != want:
            bad(f"{rtype} count {len(rows)} != {want}")
    return {"problems": problems, "mismatches": sum(problems.values()), "duplicates": duplicates,
            "duplicate_resources": duplicate_resources}


# ------------------------------------------------------------------ the benchmark

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="small", help="data set under $EHR_SYNC_FHIR_DATA or ../shared/fhir-data")
    ap.add_argument("--changes", type=int, default=10_000, help="changes queued and replayed")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (replay, plain client), medians reported")
    ap.add_argument("--concurrency", type=int, default=2,
                    help="[replay] concurrency, and the plain client's connections")
    ap.add_argument("--seed", type=int, default=1, help="seed of the change mix")
    args = ap.parse_args()
    if args.rounds < 1 or args.changes < 100 or not 1 <= args.concurrency <= 64:
        ap.error("--rounds >= 1, --changes >= 100, 1 <= --concurrency <= 64")
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # children must not inherit a blocked SIGTERM

    data_root = Path(os.environ.get("EHR_SYNC_FHIR_DATA", REPO.parent / "shared" / "fhir-data"))
    set_dir = (data_root / args.set).resolve()
    if not (set_dir / "load_order.txt").exists():
        raise BenchFailure(f"no data set at {set_dir} (set EHR_SYNC_FHIR_DATA)")
    # Every type of the set (sekmet's CapabilityStatement omits CareTeam and SupplyDelivery, which it serves).
    set_types = [t for t in (set_dir / "load_order.txt").read_text().split() if t]
    if not DAEMON_BIN.exists():
        raise BenchFailure(f"{DAEMON_BIN} is missing: swift build -c release --scratch-path .build-release "
                           "--product ehr-syncd (make bench-replay does it)")
    r = subprocess.run([sys.executable, str(HARNESS), "ensure-venv"], capture_output=True, text=True)
    if r.returncode:
        raise BenchFailure(f"sekmet_harness ensure-venv failed:\n{r.stderr[-2000:]}")

    changes = build_changes(set_dir, args.changes, args.seed)
    info(f"{len(changes)} changes (seed {args.seed}): {summarize_mix(changes)}")

    cleanup = Cleanup()
    try:
        work = Path(tempfile.mkdtemp(prefix="ehr-sync-bench-replay."))
        cleanup.add("work dir", lambda: shutil.rmtree(work, ignore_errors=True))
        logs = CACHE / "replay-logs" / time.strftime("%Y%m%d-%H%M%S")
        logs.mkdir(parents=True)
        daemon = work / "ehr-syncd"  # a copy: a rebuild during the benchmark cannot mix binaries
        shutil.copy2(DAEMON_BIN, daemon)
        version = subprocess.run([str(daemon), "--version"], capture_output=True, text=True).stdout.strip()
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
        info(f"ehr-syncd {version} (binary built {time.ctime(DAEMON_BIN.stat().st_mtime)}, tree {rev}); logs in {logs}")
        info(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine skews timings)")

        # ---- 1: sekmet with the set, and its snapshot
        server = Sekmet(work)
        server.start()
        cleanup.add("sekmet", server.stop)
        info(f"sekmet on {server.base_url}; loading {args.set}")
        loaded = server.load(set_dir)
        result(f"sekmet load of {args.set} (not counted)", loaded["elapsed_s"], "s")
        baseline = {t: loaded["types"].get(t, 0) for t in TOUCHED_TYPES}
        server.snapshot()

        # ---- 2: the mirror
        key = write_secret(work / "replica.key", base64.b64encode(os.urandom(32)).decode() + "\n")
        token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")  # 32 characters
        token_file = write_secret(work / "local-api.tokens", f"bench-replay {token}\n")
        template = work / "state-queued"
        cfg = write_config(work / "mirror.toml", server.base_url, template, key, set_types, args.concurrency)
        info("mirror: ehr-syncd --once")
        m = run_once(daemon, cfg, logs / "mirror.log", server)
        got = re.search(r"resources=(\d+) .*initial sync complete", m["log"])
        info(f"mirror: {m['wall']:.1f} s, {got.group(1) if got else '?'} resources")

        # ---- 3: the queue, EHR unreachable
        listen = f"127.0.0.1:{free_port()}"
        dead = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there: connection refused
        cfg = write_config(work / "queue.toml", dead, template, key, set_types, args.concurrency, (listen, token_file))
        info(f"queueing {len(changes)} changes through the local API (EHR unreachable)")
        q = queue_changes(daemon, cfg, logs / "queue.log", listen, token, changes)
        info(f"queued in {q['elapsed']:.1f} s; daemon log levels {q['levels']}")

        # ---- 4: rounds
        replays, plains = [], []

        def replay_round(i: int) -> None:
            server.restore()
            state = work / f"state-replay-{i}"
            shutil.copytree(template, state)
            cfg = write_config(work / f"replay-{i}.toml", server.base_url, state, key, set_types, args.concurrency)
            info(f"round {i}: replay (ehr-syncd --once, concurrency {args.concurrency})")
            r = run_once(daemon, cfg, logs / f"replay-{i}.log", server)
            p = parse_replay_pass(r["log"])
            shutil.rmtree(state, ignore_errors=True)
            if p is None:
                raise BenchFailure(f"round {i}: no `replay pass` line in {logs / f'replay-{i}.log'}")
            r.update(p)
            r["verify"] = verify(server.base_url, changes, baseline, replayed=True)
            noisy = {k: v for k, v in log_levels(r["log"]).items() if k in ("warning", "error", "critical")}
            info(f"round {i}: replay {p['elapsed_s']:.1f} s ({len(changes) / p['elapsed_s']:.0f}/s), --once "
                 f"{r['wall']:.1f} s, daemon cpu {r['cpu']:.1f} s, server cpu {r['server_cpu']:.1f} s; done "
                 f"{p.get('done')} parked {p.get('parked')} conflicts {p.get('conflicts')} discarded "
                 f"{p.get('discarded')} waiting {p.get('waiting')}; mismatches {r['verify']['mismatches']} "
                 f"{r['verify']['problems'] or ''}duplicates {r['verify']['duplicates']}"
                 + (f"; log {noisy}" if noisy else ""))
            r.pop("log")
            replays.append(r)

        def plain_round(i: int) -> None:
            server.restore()
            info(f"round {i}: plain client ({args.concurrency} connections)")
            r = plain_client(server.base_url, changes, args.concurrency, server)
            r["verify"] = verify(server.base_url, changes, baseline, replayed=False)
            info(f"round {i}: plain client {r['wall']:.1f} s ({len(changes) / r['wall']:.0f}/s; new Patients "
                 f"{r['patients_wall']:.1f} s), client cpu {r['cpu']:.1f} s, server cpu {r['server_cpu']:.1f} s; "
                 f"errors {len(r['errors'])}; mismatches {r['verify']['mismatches']} {r['verify']['problems'] or ''}")
            for e in r["errors"][:5]:
                info(f"  plain client error: {e}")
            plains.append(r)

        for i in range(1, args.rounds + 1):
            if i % 2:
                replay_round(i)
                plain_round(i)
            else:
                plain_round(i)
                replay_round(i)
        server.stop()

        med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
        n = len(changes)
        replay_s, plain_s = med(replays, "elapsed_s"), med(plains, "wall")
        info("per round (s): replay " + ", ".join(f"{r['elapsed_s']:.1f}" for r in replays)
             + "; --once " + ", ".join(f"{r['wall']:.1f}" for r in replays)
             + "; plain client " + ", ".join(f"{r['wall']:.1f}" for r in plains))
        info(f"load average at the end {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")
        result("queue through the local API (1 connection, not counted)", n / q["elapsed"], "changes/s", 0)
        result("replay concurrency", args.concurrency, "", 0)
        result("replay", n / replay_s, "changes/s", 0)
        result("replay wall", replay_s, "s")
        result("replay --once wall", med(replays, "wall"), "s")
        result("replay daemon cpu", med(replays, "cpu"), "s")
        result("replay server cpu", med(replays, "server_cpu"), "s")
        result("replay changes not done", max(n - r.get("done", 0) for r in replays), "", 0)
        result("replay content mismatches", max(r["verify"]["mismatches"] for r in replays), "", 0)
        result("plain client", n / plain_s, "changes/s", 0)
        result("plain client wall", plain_s, "s")
        result("plain client cpu", med(plains, "cpu"), "s")
        result("plain client server cpu", med(plains, "server_cpu"), "s")
        result("plain client errors", max(len(r["errors"]) for r in plains), "", 0)
        result("plain client content mismatches", max(r["verify"]["mismatches"] for r in plains), "", 0)
        result("bench-replay total", time.monotonic() - started, "s", 0)
        result("replay time ratio vs plain client", replay_s / plain_s, "", 2)
        result("replay duplicates", max(r["verify"]["duplicate_resources"] for r in replays), "", 0)
        return 0
    finally:
        cleanup.run()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as e:
        print(f"bench-replay: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench-replay: interrupted; servers stopped and temporary folders removed", file=sys.stderr)
        sys.exit(130)
