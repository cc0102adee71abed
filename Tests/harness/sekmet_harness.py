#!/usr/bin/env python3
"""Test-bench harness for the sekmet-fhir FHIR R4 server (used by Swift tests and benchmarks).

Subcommands (each prints exactly one JSON line on stdout on success; errors go to stderr, exit code != 0):

  ensure-venv                      create/refresh <repo>/.build-venv from Tests/harness/requirements.txt
  start   --data-dir DIR [--port N] [--validation off|warn|strict] [--export-delay S] [--timeout S]
          [--smart-client-id ID --smart-jwks FILE [--smart-scopes S] [--token-lifetime S]]
                                   write DIR/settings.yaml, start sekmet detached, wait for /fhir/metadata;
                                   with --smart-client-id every FHIR request needs a SMART Backend Services
                                   token from <root>/auth/token (the client is registered with the JWKS in
                                   FILE); the answer then also has "token_url"
  load    --base-url URL --set DIR [--batch-size N] [--concurrency N]
                                   PUT every resource of an NDJSON data set through transaction Bundles
  counts  --base-url URL [--all]   per-type totals (Type?_summary=count), zero counts omitted unless --all
  stop    --pid N [--timeout S]    SIGTERM the server's process group, SIGKILL after the timeout
  snapshot --data-dir DIR --dest DEST
                                   consistent online copy of the server's SQLite store (no stop needed)
  restore --data-dir DIR --snapshot SNAP --pid N [--timeout S]
                                   stop, replace the store with the snapshot, restart on the SAME port

Only the standard library is needed for ensure-venv/stop/snapshot; start/load/counts need httpx and re-exec
themselves under <repo>/.build-venv/bin/python when run with another interpreter. No resource content
(names, ids, note text) is printed: only counts, timings and redacted server diagnostics.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
REPO_ROOT = HARNESS_DIR.parent.parent
REQUIREMENTS = HARNESS_DIR / "requirements.txt"
VENV_DIR = REPO_ROOT / ".build-venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
VENV_STAMP = VENV_DIR / ".requirements.sha256"

FHIR_PATH = "/fhir"  # sekmet serves FHIR at <root>/fhir (its console is /ui, bulk files under /fhir/bulk-*)
DB_FILES = ("sekmet.db", "sekmet.db-wal", "sekmet.db-shm")  # store = one SQLite db in WAL mode

# All FHIR R4 (4.0.1) resource types; sekmet's router accepts every one of them even though its
# CapabilityStatement lists only 53 (e.g. CareTeam and SupplyDelivery are stored but not advertised).
R4_TYPES = """
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic
Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry
ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication
CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage
CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric
DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceVariable
ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse
HealthcareService ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation
ImplementationGuide InsurancePlan Invoice Library Linkage List Location Measure MeasureReport Media Medication
MedicationAdministration MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement
MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured MedicinalProductPackaged
MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition MessageHeader
MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition
OperationOutcome Organization OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation
Person PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse
RelatedPerson RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer SubstanceProtein
SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription
""".split()


class HarnessFailure(Exception):
    """A failure with a message meant for the test log (printed to stderr, exit code 1)."""


def emit(obj: dict) -> None:
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def redact(text: str) -> str:
    """Keep server diagnostics useful without leaking resource ids: 'Patient/abc' -> 'Patient/<id>'."""
    return re.sub(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}", r"\1/<id>", text)


def require_venv_python() -> None:
    """start/load/counts need httpx: re-exec under the project venv when started by another python."""
    try:
        import httpx  # noqa: F401
        return
    except ImportError:
        pass
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    raise HarnessFailure(f"httpx is not importable; run '{sys.executable} {__file__} ensure-venv' first")


# ---------------------------------------------------------------- ensure-venv

def requirements_hash() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    h.update(f"\npython {sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def cmd_ensure_venv(args: argparse.Namespace) -> None:
    want = requirements_hash()
    # Serialise concurrent callers (parallel tests, several checkouts) with a lock outside the repo.
    tag = hashlib.sha1(str(VENV_DIR).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"ehr-sync-venv-{tag}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if VENV_PYTHON.exists() and VENV_STAMP.exists() and VENV_STAMP.read_text().strip() == want:
            emit({"python": str(VENV_PYTHON), "created": False})
            return
        t0 = time.monotonic()
        shutil.rmtree(VENV_DIR, ignore_errors=True)
        log = Path(tempfile.gettempdir()) / f"ehr-sync-venv-{tag}-pip.log"
        with open(log, "w") as out:
            base_python = getattr(sys, "_base_executable", None) or sys.executable  # not a venv's python
            steps = [[base_python, "-m", "venv", str(VENV_DIR)],
                     [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                      "-r", str(REQUIREMENTS)]]
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode:
                    shutil.rmtree(VENV_DIR, ignore_errors=True)
                    raise HarnessFailure(f"'{' '.join(step[:4])} ...' failed; last lines of {log}:\n"
                                         + tail(log, 30))
        VENV_STAMP.write_text(want + "\n")  # written last: a half-built venv is rebuilt next time
        emit({"python": str(VENV_PYTHON), "created": True, "elapsed_s": round(time.monotonic() - t0, 1)})


# ---------------------------------------------------------------- start / stop

def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smart_server_auth(client_id: str, jwks_file: str, scopes: str, token_lifetime: int) -> dict:
    """sekmet's inbound auth: SMART Backend Services only, one client registered with its JWKS (public keys).

    sekmet then answers 401 to any FHIR request without a token it issued (metadata excepted), serves
    the token endpoint at <root>/auth/token, checks the client assertion (alg RS384/ES384, iss = sub =
    client_id, aud = token endpoint, exp <= now + 300 s, jti not reused) and enforces the token's scopes.
    """
    try:
        jwks = json.loads(Path(jwks_file).read_text())
    except (OSError, ValueError) as e:
        raise HarnessFailure(f"--smart-jwks {jwks_file}: not a readable JSON file ({e})")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise HarnessFailure(f"--smart-jwks {jwks_file}: expected a JWK Set {{\"keys\": [...]}} with a key")
    if token_lifetime < 1:
        raise HarnessFailure("--token-lifetime must be at least 1 second")
    return {"types": ["smart"], "token_lifetime": token_lifetime, "enforce_scopes": True,
            "smart_clients": [{"client_id": client_id, "jwks": jwks, "scopes": scopes}]}


def write_settings(data_dir: Path, port: int, validation: str, export_delay: float,
                   server_auth: dict | None = None) -> Path:
    """sekmet reads YAML; JSON is valid YAML and avoids YAML 1.1 traps (a bare `off` would become false)."""
    settings = {
        "base_url": f"http://127.0.0.1:{port}{FHIR_PATH}",  # used for fullUrl, paging links, Location headers
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(data_dir),  # sekmet.db (+ -wal/-shm) and bulk/<job>/*.ndjson live here
        "log_inbound": False,  # no per-request traffic rows (they would double every write)
        "simulator": {"enabled": False,  # no auto-generated results/responses to our writes
                      "delay_seconds": export_delay},  # also the pause before a $export job reports done
        "validation": {"inbound": validation},  # 'strict' = pydantic model check per write (~2x slower)
        "server_auth": server_auth or {"types": ["none"]},  # none, or smart_server_auth(...)
        "own_private_key_path": str(data_dir / "keys" / "sekmet_private.pem"),
    }
    path = data_dir / "settings.yaml"
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


def wait_ready(proc: subprocess.Popen, url: str, log: Path, deadline: float) -> None:
    import httpx
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessFailure(f"sekmet exited with code {proc.returncode} before answering {url}; "
                                 f"server.log tail:\n{tail(log)}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            last = type(e).__name__
        time.sleep(0.1)
    raise HarnessFailure(f"sekmet did not answer 200 on {url} in time (last: {last}); server.log tail:\n{tail(log)}")


def start_server(data_dir: Path, port: int | None, validation: str, export_delay: float, timeout: float,
                 server_auth: dict | None = None) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir.resolve()
    log = data_dir / "server.log"
    attempts = 1 if port else 3  # a picked free port can be taken before uvicorn binds it: retry
    for attempt in range(attempts):
        p = port or free_port()
        config = write_settings(data_dir, p, validation, export_delay, server_auth)
        env = {**os.environ, "SEKMET_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        for k in ("SEKMET_BASE_URL", "SEKMET_DB", "SEKMET_PUBLIC_URL", "SEKMET_PORT"):
            env.pop(k, None)  # these override the settings file
        with open(log, "a") as out:
            out.write(f"--- harness start {time.strftime('%Y-%m-%dT%H:%M:%S')} port {p}\n")
            out.flush()
            # Detached: own session/process group (stop kills the group), no inherited pipes, so a
            # caller reading the harness' stdout to EOF does not wait for the server.
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "sekmet.main:app_factory", "--factory",
                 "--host", "127.0.0.1", "--port", str(p), "--log-level", "warning", "--no-access-log",
                 "--timeout-graceful-shutdown", "3"],
                cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        base_url = f"http://127.0.0.1:{p}{FHIR_PATH}"
        try:
            wait_ready(proc, f"{base_url}/metadata", log, time.monotonic() + timeout)
        except HarnessFailure:
            if proc.poll() is None:
                stop_group(proc.pid, 5)
            if attempt + 1 < attempts and "address already in use" in tail(log, 5).lower():
                continue
            raise
        info = {"pid": proc.pid, "port": p, "base_url": base_url, "data_dir": str(data_dir)}
        if server_auth and "smart" in server_auth.get("types", []):
            info["token_url"] = f"http://127.0.0.1:{p}/auth/token"  # sekmet: <root>/auth/token
        (data_dir / "server.json").write_text(json.dumps(info) + "\n")
        return info
    raise AssertionError("unreachable")


def cmd_start(args: argparse.Namespace) -> None:
    require_venv_python()
    server_auth = None
    if args.smart_client_id or args.smart_jwks:
        if not (args.smart_client_id and args.smart_jwks):
            raise HarnessFailure("--smart-client-id and --smart-jwks go together")
        server_auth = smart_server_auth(args.smart_client_id, args.smart_jwks, args.smart_scopes,
                                        args.token_lifetime)
    emit(start_server(Path(args.data_dir), args.port, args.validation, args.export_delay, args.timeout,
                      server_auth))


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (an unreaped zombie counts as stopped)."""
    if not os.path.isdir("/proc"):  # not Linux: no zombie check
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _alive(pgid) or not os.path.isdir("/proc"):  # without /proc: killpg succeeded, so alive
        return True
    # The leader is gone or a zombie: is any other member of the group still running?
    return any(_pgid_of(int(d)) == pgid and _alive(int(d)) for d in os.listdir("/proc") if d.isdigit())


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def stop_group(pid: int, timeout: float) -> str:
    """SIGTERM the group led by pid (start_new_session made pid its leader), SIGKILL after timeout."""
    if _pgid_of(pid) is None:
        return "not-running"
    if _pgid_of(pid) != pid:  # pid was reused by an unrelated process: never signal a foreign group
        raise HarnessFailure(f"pid {pid} is not a process-group leader; refusing to signal it")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not-running"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return "terminated"
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "terminated"
    for _ in range(100):
        if not _group_alive(pid):
            break
        time.sleep(0.05)
    return "killed"


def cmd_stop(args: argparse.Namespace) -> None:
    emit({"pid": args.pid, "result": stop_group(args.pid, args.timeout)})


# ---------------------------------------------------------------- snapshot / restore

def cmd_snapshot(args: argparse.Namespace) -> None:
    """sqlite3's online backup reads one consistent WAL snapshot, so the server can keep running."""
    src = Path(args.data_dir).resolve() / "sekmet.db"
    if not src.exists():
        raise HarnessFailure(f"no sekmet store at {src}")
    dest = Path(args.dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "sekmet.db.partial"
    tmp.unlink(missing_ok=True)
    t0 = time.monotonic()
    s, d = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30), sqlite3.connect(tmp)
    try:
        s.backup(d)  # pages=-1: whole database in one step under one read transaction
    finally:
        d.close()
        s.close()
    # The copy is a standalone rollback-journal db; sekmet switches it back to WAL when it opens it.
    tmp.replace(dest / "sekmet.db")
    emit({"snapshot": str(dest), "bytes": (dest / "sekmet.db").stat().st_size,
          "elapsed_s": round(time.monotonic() - t0, 3)})


def cmd_restore(args: argparse.Namespace) -> None:
    require_venv_python()
    data_dir = Path(args.data_dir).resolve()
    snap = Path(args.snapshot).resolve() / "sekmet.db"
    if not snap.exists():
        raise HarnessFailure(f"no snapshot at {snap}")
    info = json.loads((data_dir / "server.json").read_text())
    old = json.loads((data_dir / "settings.yaml").read_text())  # keep the options it was started with
    validation = args.validation or old["validation"]["inbound"]
    export_delay = old["simulator"]["delay_seconds"] if args.export_delay is None else args.export_delay
    stop_group(args.pid, args.timeout)
    for name in DB_FILES:  # stale -wal/-shm next to an older db would corrupt it
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "bulk", ignore_errors=True)  # export jobs are in server memory: gone anyway
    shutil.copy2(snap, data_dir / "sekmet.db")
    emit(start_server(data_dir, info["port"], validation, export_delay, args.timeout_start,
                      old.get("server_auth")))  # same auth (SMART client) as before


# ---------------------------------------------------------------- load

def read_set(set_dir: Path) -> list[tuple[str, list[bytes]]]:
    order_file = set_dir / "load_order.txt"
    if not order_file.exists():
        raise HarnessFailure(f"{set_dir} is not a data set folder (no load_order.txt)")
    order = [t.strip() for t in order_file.read_text().splitlines() if t.strip()]
    extra = sorted(p.stem for p in set_dir.glob("*.ndjson") if p.stem not in order)
    if extra:
        raise HarnessFailure(f"{set_dir}: NDJSON files missing from load_order.txt: {extra}")
    out = []
    for t in order:
        path = set_dir / f"{t}.ndjson"
        lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()] if path.exists() else []
        out.append((t, lines))
    return out


def make_bundle(rtype: str, lines: list[bytes], base_url: str) -> tuple[bytes, int]:
    """Transaction Bundle of PUT Type/id entries, spliced from the raw NDJSON (no re-serialisation)."""
    parts = []
    for ln in lines:
        head = json.loads(ln)
        rid = head.get("id")
        if head.get("resourceType") != rtype or not isinstance(rid, str):
            raise HarnessFailure(f"{rtype}.ndjson: a line has resourceType {head.get('resourceType')!r} "
                                 f"or no id")
        url = f"{rtype}/{rid}"
        parts.append(b'{"fullUrl":' + json.dumps(f"{base_url}/{url}").encode()
                     + b',"request":{"method":"PUT","url":' + json.dumps(url).encode() + b'},"resource":'
                     + ln + b"}")
    body = b'{"resourceType":"Bundle","type":"transaction","entry":[' + b",".join(parts) + b"]}"
    return body, len(parts)


def post_bundle(client, base_url: str, rtype: str, lines: list[bytes]) -> tuple[int, int]:
    """Send one transaction; returns (created, updated). Raises on any non-2xx bundle or entry."""
    import httpx
    body, n = make_bundle(rtype, lines, base_url)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
               "Prefer": "return=minimal"}  # entries answer status/etag only, not the resource
    for attempt in range(3):  # PUT-only transactions are idempotent: retry transport errors
        try:
            r = client.post(base_url, content=body, headers=headers)
            break
        except httpx.TransportError as e:
            if attempt == 2:
                raise HarnessFailure(f"{rtype}: transport error posting a {n}-entry transaction: {e!r}")
            time.sleep(0.5 * (attempt + 1))
    if r.status_code != 200:
        diag = ""
        try:
            diag = "; ".join(i.get("diagnostics", "") for i in r.json().get("issue", []))[:600]
        except ValueError:
            diag = r.text[:300]
        raise HarnessFailure(f"{rtype}: transaction of {n} entries rejected with HTTP {r.status_code}: "
                             f"{redact(diag)}")
    entries = r.json().get("entry", [])
    if len(entries) != n:
        raise HarnessFailure(f"{rtype}: transaction-response has {len(entries)} entries for {n} sent")
    created = updated = 0
    for e in entries:
        status = e.get("response", {}).get("status", "")
        if status.startswith("201"):
            created += 1
        elif status.startswith("200"):
            updated += 1
        else:
            raise HarnessFailure(f"{rtype}: entry answered {status!r}: {redact(json.dumps(e)[:400])}")
    return created, updated


def cmd_load(args: argparse.Namespace) -> None:
    require_venv_python()
    import httpx
    set_dir = Path(args.set).resolve()
    base_url = args.base_url.rstrip("/")
    data = read_set(set_dir)
    counts: dict[str, int] = {}
    created = updated = 0
    t0 = time.monotonic()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    with httpx.Client(timeout=httpx.Timeout(300, connect=10), limits=limits) as client, \
            cf.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        # Types go in load_order.txt order: every bundle of a type commits before the next type starts.
        # Within a type up to --concurrency bundles are in flight (sekmet commits them one at a time).
        for rtype, lines in data:
            chunks = [lines[i:i + args.batch_size] for i in range(0, len(lines), args.batch_size)]
            for c, u in pool.map(lambda ch: post_bundle(client, base_url, rtype, ch), chunks):
                created += c
                updated += u
            counts[rtype] = len(lines)
    elapsed = time.monotonic() - t0
    total = sum(counts.values())
    emit({"set": set_dir.name, "types": counts, "total": total, "created": created, "updated": updated,
          "elapsed_s": round(elapsed, 2), "per_s": round(total / elapsed) if elapsed else None,
          "batch_size": args.batch_size, "concurrency": args.concurrency})


# ---------------------------------------------------------------- counts

def cmd_counts(args: argparse.Namespace) -> None:
    require_venv_python()
    import httpx
    base_url = args.base_url.rstrip("/")
    with httpx.Client(timeout=60) as client:
        def count(rtype: str) -> tuple[str, int]:
            r = client.get(f"{base_url}/{rtype}", params={"_summary": "count"},
                           headers={"Accept": "application/fhir+json"})
            if r.status_code != 200:
                raise HarnessFailure(f"GET {rtype}?_summary=count answered HTTP {r.status_code}: "
                                     f"{redact(r.text[:300])}")
            return rtype, int(r.json()["total"])
        with cf.ThreadPoolExecutor(max_workers=4) as pool:
            totals = dict(pool.map(count, R4_TYPES))
    emit({t: n for t, n in sorted(totals.items()) if n or args.all})


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    sub.add_parser("ensure-venv", help="create/refresh .build-venv").set_defaults(fn=cmd_ensure_venv)

    def server_opts(p: argparse.ArgumentParser, restore: bool = False) -> None:
        p.add_argument("--validation", choices=["off", "warn", "strict"], default=None if restore else "off",
                       help="sekmet inbound structural validation (default off: ~2x faster writes; "
                            "restore: as before)")
        p.add_argument("--export-delay", type=float, default=None if restore else 0.2,
                       help="seconds a $export job stays 'in progress' after writing its files")

    p = sub.add_parser("start", help="start sekmet detached and wait until it answers")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--timeout", type=float, default=60.0, help="readiness deadline in seconds")
    server_opts(p)
    p.add_argument("--smart-client-id",
                   help="require SMART Backend Services auth and register this client (needs --smart-jwks)")
    p.add_argument("--smart-jwks", help="JSON file: the client's JWK Set {\"keys\": [...]} (public keys)")
    p.add_argument("--smart-scopes", default="system/*.*",
                   help="scopes the client may be granted (default system/*.*)")
    p.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime in seconds")
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("load", help="load an NDJSON data set folder")
    p.add_argument("--base-url", required=True)
    p.add_argument("--set", required=True, help="folder with <Type>.ndjson files and load_order.txt")
    p.add_argument("--batch-size", type=int, default=500,
                   help="entries per transaction Bundle (server CPU is flat above ~100)")
    p.add_argument("--concurrency", type=int, default=2, help="transactions in flight")
    p.set_defaults(fn=cmd_load)

    p = sub.add_parser("counts", help="per-type totals")
    p.add_argument("--base-url", required=True)
    p.add_argument("--all", action="store_true", help="include types with 0 resources")
    p.set_defaults(fn=cmd_counts)

    p = sub.add_parser("stop", help="stop a server started by 'start'")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(fn=cmd_stop)

    p = sub.add_parser("snapshot", help="online copy of the server store")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--dest", required=True)
    p.set_defaults(fn=cmd_snapshot)

    p = sub.add_parser("restore", help="stop, restore a snapshot, restart on the same port")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=10.0, help="stop timeout")
    p.add_argument("--timeout-start", type=float, default=60.0, help="readiness deadline")
    server_opts(p, restore=True)
    p.set_defaults(fn=cmd_restore)

    args = ap.parse_args(argv)
    # Swift's Process (and some CI runners) start us with most signals blocked; a blocked mask is inherited
    # through fork/exec, and a server with SIGTERM blocked only dies by SIGKILL. Start from a clean mask.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        args.fn(args)
    except HarnessFailure as e:
        print(f"sekmet_harness {args.cmd}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
