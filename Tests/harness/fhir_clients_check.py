#!/usr/bin/env python3
"""Interop check of ehr-syncd's local FHIR API with two real FHIR clients and a validator.

Run against a running daemon with `[local_api]` that mirrors a practice (e.g. `small`):

    .build-venv/bin/python Tests/harness/fhir_clients_check.py --base-url http://127.0.0.1:PORT/fhir \\
        --token-file FILE --family FAMILY [--expect-patients 20] [--output FILE]

(`--token TOKEN` instead of `--token-file` works too; a file keeps the token out of `ps`.)

Clients (pinned in Tests/harness/requirements.txt): fhirpy 2.3.1 (its sync client, on `requests`) and fhirclient
4.4.0 (SMART on FHIR's client-py, whose R4 models parse strictly). Every response body either client receives
(CapabilityStatement, resources, Bundles and each Bundle entry) is validated with the FHIR models of
fhir.resources 8.3.0 (`fhir.resources.R4B`: 4.3.0, the same structures as R4 for every type served here;
fhir.resources only ships R4 proper in 6.x, which needs pydantic 1) and checked against the FHIR JSON rules the
models do not enforce (no empty arrays, objects or strings, no nulls outside primitive arrays).

What is exercised, with both clients where both can:
  - `GET metadata` (fhirclient's `prepare()` parses it with its strict CapabilityStatement model);
  - Patient search by family, name (a prefix of the family), birthdate and identifier (system|value of the
    patient's first identifier with a system): each must find the patient, every match must agree;
  - read of the Patient (and vread of its current version);
  - paging through every Patient with `_count=5` following `next` links to the end: pages, resources visited,
    unique ids against `Bundle.total` (and `--expect-patients`); the patient's Encounters with `_count=5&_sort=date`
    the same way (order checked), against the Encounters of its `$everything`;
  - `Patient/{id}/$everything`: the Patient first, its compartment, referenced resources;
  - Observation search by patient + category + date (a day) + code (system|code) of one of the patient's
    Observations: the matches must be exactly what the same criteria select from `$everything`;
  - MedicationRequest search by patient with `_include=MedicationRequest:medication`: every
    `medicationReference` of the matches must come back as an included Medication (`search.mode` include);
  - every answer: `X-Data-As-Of` header (a FHIR instant), `application/fhir+json`; every Bundle: `meta.lastUpdated`;
    a request without a token: 401 with `WWW-Authenticate`;
  - a resource found by search must be the same JSON (numbers compared as text) as in `$everything` (which
    serves the stored bytes).

Output: one JSON object on stdout (counts, the failures); exit 0 when there is no failure, 1 otherwise, 2 on a
usage error. Failures name the check, the client, the resource type, the resource id where there is one and the
validation error (field path and message, never field values). Nothing else of the records is printed: no names,
birth dates or identifiers, and no request URL (their queries carry search values).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import sys
import time
import traceback
from pathlib import Path

import requests

INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
URL_RE = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Report:
    """Collects counts and failures; scrubs every message of search values and URL queries."""

    def __init__(self) -> None:
        self.failures: list[dict] = []
        self.secrets: set[str] = set()  # values to scrub from messages (search values, the token)
        self.summary: dict = {}

    def scrub(self, text: str) -> str:
        text = URL_RE.sub(r"\1?<query>", str(text))
        for s in sorted(self.secrets, key=len, reverse=True):
            if s and len(s) >= 3:
                text = text.replace(s, "<redacted>")
        return text[:400]

    def fail(self, check: str, client: str, error: str, rtype: str | None = None, rid: str | None = None) -> None:
        item = {"check": check, "client": client}
        if rtype:
            item["type"] = rtype
        if rid and ID_RE.match(rid):
            item["id"] = rid
        item["error"] = self.scrub(error)
        if item not in self.failures and len(self.failures) < 200:
            self.failures.append(item)

    def expect(self, condition: bool, check: str, client: str, error: str, rtype: str | None = None) -> bool:
        if not condition:
            self.fail(check, client, error, rtype)
        return condition


# ------------------------------------------------------------------ validation of everything received

def json_rule_problems(node, path: str = "", in_primitive_array: bool = False) -> list[str]:
    """FHIR JSON rules (R4 §2.6.2) that pydantic models do not enforce: no empty arrays, objects or strings;
    null only inside an array (to align primitive values with their `_x` extensions). Paths, never values."""
    problems: list[str] = []
    if node is None:
        if not in_primitive_array:
            problems.append(f"{path or '(root)'}: null")
    elif isinstance(node, dict):
        if not node:
            problems.append(f"{path or '(root)'}: empty object")
        for k, v in node.items():
            problems += json_rule_problems(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        if not node:
            problems.append(f"{path}: empty array")
        for i, v in enumerate(node):
            problems += json_rule_problems(v, f"{path}[{i}]", in_primitive_array=True)
    elif isinstance(node, str) and node.strip() == "" and not path.endswith(".div"):
        problems.append(f"{path}: empty string")
    return problems


def validation_messages(error: Exception) -> list[str]:
    """`loc: message` lines of a pydantic ValidationError without input values; else the exception's type."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            items = errors(include_input=False, include_url=False)
            return [".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", "")) for e in items][:8]
        except TypeError:
            pass
    return [type(error).__name__]


class Validator:
    """Validates every resource and Bundle with fhir.resources' R4B models (each distinct body once)."""

    def __init__(self, report: Report) -> None:
        from fhir.resources import R4B

        self.models = R4B
        self.report = report
        self.seen: dict[str, bool] = {}
        self.by_type: collections.Counter = collections.Counter()
        self.bundles = 0
        self.resources = 0
        self.failed = 0

    def validate(self, obj: dict, check: str, client: str) -> bool:
        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        rid = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(rtype, str):
            self.report.fail(check, client, "a body without resourceType")
            return False
        key = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        if key in self.seen:
            return self.seen[key]
        ok = True
        try:
            model = self.models.get_fhir_model_class(rtype)
        except Exception:  # noqa: BLE001 - an unknown type is a failure to report, not a crash
            self.report.fail(check, client, f"not an R4B resource type: {rtype}", rtype, rid)
            model = None
            ok = False
        if model is not None:
            try:
                model.model_validate(obj)
            except Exception as e:  # noqa: BLE001 - pydantic ValidationError and fhir_core's own errors
                ok = False
                self.report.fail(check, client, "fhir.resources R4B: " + "; ".join(validation_messages(e)),
                                 rtype, rid)
        problems = json_rule_problems(obj)
        if problems:
            ok = False
            self.report.fail(check, client, "FHIR JSON rules: " + "; ".join(problems[:8]), rtype, rid)
        self.seen[key] = ok
        self.by_type[rtype] += 1
        if rtype == "Bundle":
            self.bundles += 1
        else:
            self.resources += 1
        if not ok:
            self.failed += 1
        return ok


class Traffic:
    """A `requests` response hook shared by both clients: headers checked and every JSON body validated."""

    def __init__(self, report: Report, validator: Validator) -> None:
        self.report = report
        self.validator = validator
        self.check = "setup"
        self.client = "-"
        self.responses = 0
        self.ok_responses = 0
        self.with_as_of = 0
        self.bundles = 0
        self.bundles_with_last_updated = 0
        self.as_of_equal_last_updated = 0
        self.entries = 0

    def hook(self, response: requests.Response, *args, **kwargs) -> requests.Response:
        self.responses += 1
        if not 200 <= response.status_code < 300:
            return response
        self.ok_responses += 1
        check, client = self.check, self.client
        as_of = response.headers.get("X-Data-As-Of")
        if as_of and INSTANT_RE.match(as_of):
            self.with_as_of += 1
        else:
            self.report.fail(check, client, "answer without a valid X-Data-As-Of header")
        ctype = response.headers.get("Content-Type", "")
        self.report.expect(ctype.startswith("application/fhir+json"), check, client,
                           "Content-Type is not application/fhir+json")
        try:
            body = response.json()
        except ValueError:
            self.report.fail(check, client, "a 2xx answer whose body is not JSON")
            return response
        self.validator.validate(body, check, client)
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            self.bundles += 1
            last_updated = (body.get("meta") or {}).get("lastUpdated")
            if isinstance(last_updated, str) and INSTANT_RE.match(last_updated):
                self.bundles_with_last_updated += 1
                if last_updated == as_of:
                    self.as_of_equal_last_updated += 1
            else:
                self.report.fail(check, client, "Bundle without a valid meta.lastUpdated", "Bundle")
            for entry in body.get("entry") or []:
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    self.entries += 1
                    self.validator.validate(resource, check, client)
                else:
                    self.report.fail(check, client, "Bundle entry without a resource", "Bundle")
                if not entry.get("fullUrl"):
                    self.report.fail(check, client, "Bundle entry without fullUrl", "Bundle")
        return response


# ------------------------------------------------------------------ helpers on resources

def ref_id(value, rtype: str) -> str | None:
    """The id of a `Type/id` (or absolute .../Type/id) reference to rtype."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == rtype:
        return parts[-1]
    return None


def codings(value) -> list[tuple[str | None, str | None]]:
    if isinstance(value, list):
        return [c for v in value for c in codings(v)]
    if isinstance(value, dict):
        return [(c.get("system"), c.get("code")) for c in value.get("coding") or [] if isinstance(c, dict)]
    return []


def plain(resource) -> dict:
    """A client's resource object as a plain dict (fhirpy's AttrDict resources, fhirclient's models, dicts)."""
    if hasattr(resource, "as_json"):
        return resource.as_json()
    if hasattr(resource, "serialize"):
        return resource.serialize()
    return json.loads(json.dumps(resource))


# ------------------------------------------------------------------ the checks

class Checker:
    def __init__(self, base_url: str, token: str, family: str, expect_patients: int | None) -> None:
        import fhirpy
        from fhirclient import client as fhirclient_client

        self.base = base_url.rstrip("/")
        self.token = token
        self.family = family
        self.expect_patients = expect_patients
        self.report = Report()
        self.report.secrets |= {token, family}
        self.validator = Validator(self.report)
        self.traffic = Traffic(self.report, self.validator)
        self.fhirpy = fhirpy.SyncFHIRClient(
            self.base, authorization=f"Bearer {token}",
            requests_config={"hooks": {"response": [self.traffic.hook]}, "timeout": 120})
        self.smart = fhirclient_client.FHIRClient(settings={"app_id": "ehr-sync-interop", "api_base": self.base})
        self.smart.server.session.headers["Authorization"] = f"Bearer {token}"
        self.smart.server.session.hooks["response"].append(self.traffic.hook)
        self.s = self.report.summary
        self.everything_json: dict[str, str] = {}  # "Type/id" -> canonical JSON (stored bytes)

    def section(self, check: str, client: str) -> None:
        self.traffic.check, self.traffic.client = check, client

    def guarded(self, check: str, client: str, fn, *args):
        self.section(check, client)
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the other checks go on
            where = traceback.extract_tb(e.__traceback__)[-1]
            self.report.fail(check, client, f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})")
            return None

    # ---- metadata and auth

    def metadata(self) -> None:
        def by_fhirpy():
            cap = self.fhirpy.execute("metadata", method="get")
            self.s["fhir_version"] = cap.get("fhirVersion")
        self.guarded("metadata", "fhirpy", by_fhirpy)

        def by_fhirclient():
            self.smart.prepare()  # fetches and strictly parses the CapabilityStatement
            self.s["fhirclient_prepare"] = True
        self.s["fhirclient_prepare"] = False
        self.guarded("metadata", "fhirclient", by_fhirclient)

        def unauthenticated():
            r = requests.get(f"{self.base}/metadata", headers={"Accept": "application/fhir+json"}, timeout=60)
            self.report.expect(r.status_code == 401, "auth", "requests", f"no token: HTTP {r.status_code}, not 401")
            self.report.expect("bearer" in r.headers.get("WWW-Authenticate", "").lower(), "auth", "requests",
                               "401 without WWW-Authenticate: Bearer")
            r = requests.get(f"{self.base}/Patient", headers={"Authorization": "Bearer " + "x" * 40}, timeout=60)
            self.report.expect(r.status_code == 401, "auth", "requests", f"wrong token: HTTP {r.status_code}")
        self.guarded("auth", "requests", unauthenticated)

    # ---- patient searches and read

    def find_patient(self) -> dict | None:
        self.section("patient search family", "fhirpy")
        found = self.fhirpy.resources("Patient").search(family=self.family).limit(50).fetch()
        self.s.setdefault("patient_search", {})["family"] = {"fhirpy": len(found)}
        if not found:
            self.report.fail("patient search family", "fhirpy", "no Patient with the given family name")
            return None
        patient = plain(found[0])
        pid = patient.get("id", "")
        self.s["patient_id"] = pid
        return patient

    def patient_searches(self, patient: dict) -> None:
        pid = patient["id"]
        searches: dict[str, dict[str, str]] = {"family": {"family": self.family}}
        names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
        fam = next((n.get("family") for n in names if n.get("family")), None)
        if fam and len(fam) > 3:
            searches["name"] = {"name": fam[: max(3, len(fam) - 2)]}  # a prefix: `name` matches the start
            self.report.secrets.add(fam[: max(3, len(fam) - 2)])
        given = next((g for n in names for g in n.get("given") or []), None)
        if given:
            self.report.secrets.add(given)
            searches["given+family"] = {"given": given, "family": self.family}
        if patient.get("birthDate"):
            searches["birthdate"] = {"birthdate": patient["birthDate"]}
            self.report.secrets.add(patient["birthDate"])
        ident = next((i for i in patient.get("identifier") or [] if i.get("system") and i.get("value")), None)
        if ident:
            searches["identifier"] = {"identifier": f"{ident['system']}|{ident['value']}"}
            self.report.secrets.add(ident["value"])
        if patient.get("gender"):
            searches["gender+family"] = {"gender": patient["gender"], "family": self.family}
        from fhirclient.models.patient import Patient as FCPatient

        table = self.s.setdefault("patient_search", {})
        for label, params in searches.items():
            check = f"patient search {label}"
            row = table.setdefault(label, {})

            def by_fhirpy(params=params, check=check, row=row):
                results = [plain(r) for r in self.fhirpy.resources("Patient").search(**params).limit(100).fetch()]
                row["fhirpy"] = len(results)
                ids = [r.get("id") for r in results]
                self.report.expect(pid in ids, check, "fhirpy", "the patient is not among the matches", "Patient")
                if "birthdate" in params:
                    self.report.expect(all(r.get("birthDate") == params["birthdate"] for r in results), check,
                                       "fhirpy", "a match with another birthDate", "Patient")
                return ids

            def by_fhirclient(params=params, check=check, row=row):
                bundle = FCPatient.where(struct=dict(params, _count="100"))._read_bundle(self.smart.server)
                ids = [e.resource.id for e in bundle.entry or []]
                row["fhirclient"] = len(ids)
                self.report.expect(pid in ids, check, "fhirclient", "the patient is not among the matches", "Patient")
                self.report.expect(bundle.total == len(ids), check, "fhirclient",
                                   f"Bundle.total {bundle.total} but {len(ids)} entries", "Bundle")
                return ids

            a = self.guarded(check, "fhirpy", by_fhirpy)
            b = self.guarded(check, "fhirclient", by_fhirclient)
            if a is not None and b is not None:
                self.report.expect(sorted(a) == sorted(b), check, "both", "fhirpy and fhirclient got different matches")

        def no_match():
            # A search that finds nothing still answers a valid searchset Bundle (total 0).
            raw = self.fhirpy.resources("Patient").search(family="Zz-no-such-family-0").fetch_raw()
            table["no match"] = {"fhirpy": len(raw.get("entry") or []), "total": raw.get("total")}
            self.report.expect(raw.get("total") == 0 and not raw.get("entry"), "patient search no match", "fhirpy",
                               "a search for an absent family found something", "Bundle")
        self.guarded("patient search no match", "fhirpy", no_match)

    def read_patient(self, pid: str) -> None:
        def by_fhirpy():
            p = plain(self.fhirpy.reference("Patient", pid).to_resource())
            self.report.expect(p.get("id") == pid, "read", "fhirpy", "read returned another id", "Patient")
            vid = (p.get("meta") or {}).get("versionId")
            if vid:
                v = self.fhirpy.execute(f"Patient/{pid}/_history/{vid}", method="get")
                self.report.expect(v.get("id") == pid, "vread", "fhirpy", "vread returned another id", "Patient")
            self.s["read"] = {"fhirpy": True, "vread": bool(vid)}
        self.guarded("read", "fhirpy", by_fhirpy)

        def by_fhirclient():
            from fhirclient.models.patient import Patient as FCPatient
            p = FCPatient.read(pid, self.smart.server)
            self.report.expect(p.id == pid, "read", "fhirclient", "read returned another id", "Patient")
            self.s.setdefault("read", {})["fhirclient"] = True
        self.guarded("read", "fhirclient", by_fhirclient)

    # ---- paging

    def page_patients(self) -> None:
        table = self.s.setdefault("paging", {})

        def by_fhirpy():
            before = self.traffic.bundles
            resources = [plain(r) for r in self.fhirpy.resources("Patient").limit(5)]  # __iter__ follows next
            pages = self.traffic.bundles - before
            total = self.fhirpy.resources("Patient").limit(1).fetch_raw().get("total")
            ids = [r.get("id") for r in resources]
            table["Patient fhirpy"] = {"pages": pages, "visited": len(ids), "unique": len(set(ids)), "total": total}
            self.check_paging("Patient fhirpy", table["Patient fhirpy"])
        self.guarded("paging Patient", "fhirpy", by_fhirpy)

        def by_fhirclient():
            from fhirclient.models.patient import Patient as FCPatient
            pages = 0
            ids: list[str] = []
            totals = set()
            links: list[tuple[bool, bool]] = []
            for bundle in FCPatient.where(struct={"_count": "5"}).perform_iter(self.smart.server):
                pages += 1
                totals.add(bundle.total)
                rels = {link.relation for link in bundle.link or []}
                links.append(("next" in rels, "previous" in rels))
                ids += [e.resource.id for e in bundle.entry or []]
                if pages > 10_000:
                    raise RuntimeError("more than 10 000 pages: next links loop")
            total = totals.pop() if len(totals) == 1 else None
            self.report.expect(total is not None, "paging Patient", "fhirclient", "Bundle.total changed between pages")
            row = {"pages": pages, "visited": len(ids), "unique": len(set(ids)), "total": total}
            table["Patient fhirclient"] = row
            self.check_paging("Patient fhirclient", row)
            if links:
                self.report.expect(not links[0][1], "paging Patient", "fhirclient", "first page has a previous link")
                self.report.expect(not links[-1][0], "paging Patient", "fhirclient", "last page has a next link")
                self.report.expect(all(n for n, _ in links[:-1]) and all(p for _, p in links[1:]),
                                   "paging Patient", "fhirclient", "a middle page without next/previous links")
        self.guarded("paging Patient", "fhirclient", by_fhirclient)

    def check_paging(self, label: str, row: dict) -> None:
        check = f"paging {label}"
        total = row.get("total")
        self.report.expect(row["visited"] == total, check, label.split()[-1],
                           f"visited {row['visited']} resources, Bundle.total is {total}")
        self.report.expect(row["unique"] == row["visited"], check, label.split()[-1], "a resource on two pages")
        if isinstance(total, int) and total:
            self.report.expect(row["pages"] == -(-total // 5), check, label.split()[-1],
                               f"{row['pages']} pages for {total} resources at _count=5")
        if self.expect_patients is not None and label.startswith("Patient"):
            self.report.expect(total == self.expect_patients, check, label.split()[-1],
                               f"Bundle.total {total}, expected {self.expect_patients} patients")

    def page_encounters(self, pid: str, expected: int | None) -> None:
        def by_fhirpy():
            before = self.traffic.bundles
            search = self.fhirpy.resources("Encounter").search(patient=pid).sort("date").limit(5)
            resources = [plain(r) for r in search]
            pages = self.traffic.bundles - before
            ids = [r.get("id") for r in resources]
            total = search.limit(1).fetch_raw().get("total")
            row = {"pages": pages, "visited": len(ids), "unique": len(set(ids)), "total": total,
                   "in_everything": expected}
            self.s.setdefault("paging", {})["Encounter of the patient, fhirpy"] = row
            self.check_paging("Encounter fhirpy", row)
            if expected is not None:
                self.report.expect(total == expected, "paging Encounter", "fhirpy",
                                   f"{total} Encounters by search, {expected} in $everything", "Encounter")
            starts = [((r.get("period") or {}).get("start") or "", r.get("id") or "") for r in resources]
            self.report.expect(starts == sorted(starts), "paging Encounter", "fhirpy",
                               "_sort=date: pages not in date order", "Encounter")
            wrong = [r.get("id") for r in resources if ref_id(r.get("subject"), "Patient") != pid]
            self.report.expect(not wrong, "paging Encounter", "fhirpy", f"{len(wrong)} Encounters of another patient")
        self.guarded("paging Encounter", "fhirpy", by_fhirpy)

    # ---- $everything

    def everything(self, pid: str) -> list[dict]:
        result: list[dict] = []

        def by_fhirpy():
            response = requests.get(f"{self.base}/Patient/{pid}/$everything",
                                    headers={"Authorization": f"Bearer {self.token}",
                                             "Accept": "application/fhir+json"},
                                    hooks={"response": [self.traffic.hook]}, timeout=120)
            response.raise_for_status()
            # The stored bytes, numbers kept as their text.
            raw = json.loads(response.text, parse_float=lambda s: "#" + s, parse_int=lambda s: "#" + s)
            for entry in raw.get("entry") or []:
                res = entry.get("resource") or {}
                self.everything_json[f"{res.get('resourceType')}/{res.get('id')}"] = json.dumps(
                    res, sort_keys=True, ensure_ascii=False)
            bundle = self.fhirpy.execute(f"Patient/{pid}/$everything", method="get")  # fhirpy's own call
            entries = [plain(e["resource"]) for e in bundle.get("entry") or []]
            result.extend(entries)
            by_type = collections.Counter(r.get("resourceType") for r in entries)
            first = entries[0] if entries else {}
            row = {"total": bundle.get("total"), "entries": len(entries), "by_type": dict(sorted(by_type.items())),
                   "first_is_patient": first.get("resourceType") == "Patient" and first.get("id") == pid,
                   "encounters": by_type.get("Encounter", 0)}
            self.s["everything"] = row
            self.report.expect(row["first_is_patient"], "$everything", "fhirpy", "the Patient is not the first entry")
            self.report.expect(bundle.get("total") == len(entries), "$everything", "fhirpy",
                               f"Bundle.total {bundle.get('total')} but {len(entries)} entries")
            keys = [f"{r.get('resourceType')}/{r.get('id')}" for r in entries]
            self.report.expect(len(keys) == len(set(keys)), "$everything", "fhirpy", "a resource twice")
            # Compartment resources must be the patient's own.
            for r in entries:
                rtype = r.get("resourceType")
                if rtype in ("Encounter", "Observation", "Condition", "Procedure", "MedicationRequest",
                             "Immunization", "DiagnosticReport", "AllergyIntolerance", "CarePlan"):
                    owner = ref_id(r.get("subject"), "Patient") or ref_id(r.get("patient"), "Patient")
                    if owner != pid:
                        self.report.fail("$everything", "fhirpy", "a resource of another patient", rtype, r.get("id"))
        self.guarded("$everything", "fhirpy", by_fhirpy)

        def by_fhirclient():
            from fhirclient.models.bundle import Bundle as FCBundle
            bundle = FCBundle.read_from(f"Patient/{pid}/$everything", self.smart.server)
            n = len(bundle.entry or [])
            self.s.setdefault("everything", {})["fhirclient_entries"] = n
            if result:
                self.report.expect(n == len(result), "$everything", "fhirclient",
                                   f"{n} entries, fhirpy got {len(result)}")
        self.guarded("$everything", "fhirclient", by_fhirclient)
        return result

    # ---- clinical searches

    def observation_search(self, pid: str, everything: list[dict]) -> None:
        def instant(o):
            v = o.get("effectiveDateTime")
            return v if isinstance(v, str) and len(v) >= 10 else None

        candidates = [o for o in everything if o.get("resourceType") == "Observation" and instant(o)
                      and any(c for c in codings(o.get("category")) if c[1]) and any(
                          c for c in codings(o.get("code")) if c[0] and c[1])]
        if not candidates:
            self.report.fail("Observation search", "-", "the patient has no Observation with category, code and "
                             "effectiveDateTime: choose another family")
            return
        # The patient's most common (code, year): the searches are then expected to find several, not one.
        common = collections.Counter((next(c for c in codings(o["code"]) if c[0] and c[1]), instant(o)[:4])
                                     for o in candidates)
        ((system, code), year), _ = common.most_common(1)[0]
        target = next(o for o in candidates if (system, code) in codings(o["code"]) and instant(o)[:4] == year)
        category = next(c for c in codings(target["category"]) if c[1])
        day = instant(target)[:10]
        self.report.secrets |= {year, day}
        # Three date forms: a year (eq: the whole year), a day, and a ge/lt range given as two parameters.
        searches = {
            "year": ({"date": year}, lambda v: v[:4] == year),
            "day": ({"date": day}, lambda v: v[:10] == day),
            "range": ({"date": [f"ge{year}-01-01", f"lt{int(year) + 1}-01-01"]}, lambda v: v[:4] == year),
        }
        table = self.s.setdefault("observation_search", {})
        for label, (date_params, in_range) in searches.items():
            params = {"patient": pid, "category": category[1], "code": f"{system}|{code}", **date_params}
            check = f"Observation search ({label})"

            def matches(o, in_range=in_range):
                return (o.get("resourceType") == "Observation" and instant(o) and in_range(instant(o))
                        and (system, code) in codings(o.get("code"))
                        and any(c[1] == category[1] for c in codings(o.get("category"))))
            expected = sorted(o["id"] for o in everything if matches(o))
            row = table.setdefault(label, {"expected": len(expected)})

            def by_fhirpy(params=params, check=check, row=row, expected=expected):
                found = [plain(r) for r in self.fhirpy.resources("Observation").search(**params).limit(500).fetch()]
                row["fhirpy"] = len(found)
                self.report.expect(sorted(r["id"] for r in found) == expected, check, "fhirpy",
                                   f"{len(found)} matches, {len(expected)} expected from $everything", "Observation")
                self.compare_with_everything(check, "fhirpy", found)
            self.guarded(check, "fhirpy", by_fhirpy)
            if label == "range":
                continue  # fhirclient's query structs cannot repeat a parameter

            def by_fhirclient(params=params, check=check, row=row, expected=expected):
                from fhirclient.models.observation import Observation as FCObservation
                search = FCObservation.where(struct=dict(params, _count="500"))
                found = [r.id for r in search.perform_resources_iter(self.smart.server)]
                row["fhirclient"] = len(found)
                self.report.expect(sorted(found) == expected, check, "fhirclient",
                                   f"{len(found)} matches, {len(expected)} expected from $everything", "Observation")
            self.guarded(check, "fhirclient", by_fhirclient)

    def medication_include(self, pid: str, everything: list[dict]) -> None:
        own = [r for r in everything if r.get("resourceType") == "MedicationRequest"]
        row = {"in_everything": len(own)}
        self.s["medication_include"] = row

        def by_fhirpy():
            raw = self.fhirpy.resources("MedicationRequest").search(patient=pid).include(
                "MedicationRequest", "medication").limit(500).fetch_raw()
            matches, included = [], []
            for entry in raw.get("entry") or []:
                res = plain(entry["resource"])
                mode = (entry.get("search") or {}).get("mode")
                (included if mode == "include" else matches).append(res)
                if mode not in ("match", "include"):
                    self.report.fail("MedicationRequest _include", "fhirpy", f"search.mode {mode!r}",
                                     res.get("resourceType"), res.get("id"))
            refs = {ref_id(m.get("medicationReference"), "Medication") for m in matches} - {None}
            inc = {r.get("id") for r in included if r.get("resourceType") == "Medication"}
            row.update({"matches": len(matches), "total": raw.get("total"), "medication_references": len(refs),
                        "included": len(included), "included_medications": len(inc)})
            self.report.expect(len(matches) == len(own), "MedicationRequest _include", "fhirpy",
                               f"{len(matches)} matches, {len(own)} in $everything", "MedicationRequest")
            self.report.expect(refs == inc, "MedicationRequest _include", "fhirpy",
                               f"{len(refs)} referenced Medications, {len(inc)} included", "Medication")
            self.report.expect(all(r.get("resourceType") == "Medication" for r in included),
                               "MedicationRequest _include", "fhirpy", "an included resource is not a Medication")
            self.compare_with_everything("MedicationRequest _include", "fhirpy", matches + included)
        self.guarded("MedicationRequest _include", "fhirpy", by_fhirpy)

        def by_fhirclient():
            from fhirclient.models.medicationrequest import MedicationRequest as FCMedicationRequest
            search = FCMedicationRequest.where(
                struct={"patient": pid, "_count": "500", "_include": "MedicationRequest:medication"})
            n_match = n_inc = 0
            for bundle in search.perform_iter(self.smart.server):
                for e in bundle.entry or []:
                    if e.search and e.search.mode == "include":
                        n_inc += 1
                    else:
                        n_match += 1
            row["fhirclient"] = {"matches": n_match, "included": n_inc}
            self.report.expect(n_match == len(own), "MedicationRequest _include", "fhirclient",
                               f"{n_match} matches, {len(own)} in $everything", "MedicationRequest")
            if "included" in row:
                self.report.expect(n_inc == row["included"], "MedicationRequest _include", "fhirclient",
                                   f"{n_inc} included, fhirpy got {row['included']}", "Medication")
        self.guarded("MedicationRequest _include", "fhirclient", by_fhirclient)

    def compare_with_everything(self, check: str, client: str, resources: list[dict]) -> None:
        """A resource served by a search must equal the stored copy $everything serves (numbers as text)."""
        compared = mismatched = 0
        for r in resources:
            key = f"{r.get('resourceType')}/{r.get('id')}"
            stored = self.everything_json.get(key)
            if stored is None:
                continue
            compared += 1
            if as_text_json_from_float(r) != stored_without_number_text(stored):
                mismatched += 1
                self.report.fail(check, client, "differs from the copy in $everything", r.get("resourceType"),
                                 r.get("id"))
        counts = self.s.setdefault("compared_with_everything", {"compared": 0, "mismatched": 0})
        counts["compared"] += compared
        counts["mismatched"] += mismatched

    def unknown_parameters(self) -> None:
        """Information, not failures: what common client calls beyond the supported parameters get. FHIR's
        default (lenient) handling ignores unknown parameters; the local API refuses them (400)."""
        info = self.s.setdefault("info", {})
        for label, query in (("fhirpy count() (_totalMethod)", {"_count": "0", "_totalMethod": "count"}),
                             ("_summary=count", {"_summary": "count"}), ("_total=accurate", {"_total": "accurate"}),
                             ("_elements", {"_elements": "id"})):
            try:
                r = requests.get(f"{self.base}/Patient", params=query, timeout=60,
                                 headers={"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"})
                info[label] = r.status_code
            except requests.RequestException as e:
                info[label] = type(e).__name__

    def run(self) -> dict:
        t0 = time.monotonic()
        self.metadata()
        self.unknown_parameters()
        patient = self.guarded("patient search family", "fhirpy", self.find_patient)
        if patient:
            pid = patient["id"]
            self.patient_searches(patient)
            self.read_patient(pid)
            self.page_patients()
            everything = self.everything(pid)
            encounters = sum(1 for r in everything if r.get("resourceType") == "Encounter") if everything else None
            self.page_encounters(pid, encounters)
            if everything:
                self.observation_search(pid, everything)
                self.medication_include(pid, everything)
                self.exact_numbers(pid)
        t = self.traffic
        self.s["http"] = {"responses": t.responses, "ok": t.ok_responses, "with_data_as_of": t.with_as_of,
                          "bundles": t.bundles, "bundles_with_last_updated": t.bundles_with_last_updated,
                          "bundle_last_updated_equals_data_as_of": t.as_of_equal_last_updated,
                          "bundle_entries": t.entries}
        v = self.validator
        self.s["validated"] = {"resources": v.resources, "bundles": v.bundles, "failed": v.failed,
                               "by_type": dict(sorted(v.by_type.items()))}
        self.s["seconds"] = round(time.monotonic() - t0, 1)
        self.s["ok"] = not self.report.failures
        self.s["failures"] = self.report.failures
        return self.s

    def exact_numbers(self, pid: str) -> None:
        """Search answers re-serialise resources: their numbers must keep their text (FHIR decimals carry
        precision). Compared on the raw bodies of an Observation search and $everything."""
        def check():
            r = requests.get(f"{self.base}/Observation", params={"patient": pid, "_count": "500"},
                             headers={"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"},
                             hooks={"response": [self.traffic.hook]}, timeout=120)
            r.raise_for_status()
            raw = json.loads(r.text, parse_float=lambda s: "#" + s, parse_int=lambda s: "#" + s)
            compared = mismatched = 0
            for entry in raw.get("entry") or []:
                res = entry.get("resource") or {}
                key = f"Observation/{res.get('id')}"
                stored = self.everything_json.get(key)
                if stored is None:
                    continue
                compared += 1
                if json.dumps(res, sort_keys=True, ensure_ascii=False) != stored:
                    mismatched += 1
                    self.report.fail("search vs stored bytes", "requests", "differs (numbers compared as text) "
                                     "from the copy in $everything", "Observation", res.get("id"))
            self.s["search_vs_stored_exact"] = {"compared": compared, "mismatched": mismatched}
            self.report.expect(compared > 0, "search vs stored bytes", "requests", "nothing to compare")
        self.guarded("search vs stored bytes", "requests", check)


def as_text_json_from_float(obj) -> str:
    """Clients parse numbers to floats: compare both sides the same way (text precision is checked separately by
    `exact_numbers` on raw bodies)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def stored_without_number_text(stored: str) -> str:
    def undo(node):
        if isinstance(node, dict):
            return {k: undo(v) for k, v in node.items()}
        if isinstance(node, list):
            return [undo(v) for v in node]
        if isinstance(node, str) and node.startswith("#"):
            text = node[1:]
            try:
                return int(text)
            except ValueError:
                return float(text)
        return node
    return json.dumps(undo(json.loads(stored)), sort_keys=True, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", required=True, help="the local API's FHIR base, e.g. http://127.0.0.1:8090/fhir")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--token", help="bearer token of the local API")
    group.add_argument("--token-file", help="file whose last `author token` line holds the token")
    ap.add_argument("--family", required=True, help="family name of a mirrored patient")
    ap.add_argument("--expect-patients", type=int, help="number of Patients the replica must hold")
    ap.add_argument("--output", help="also write the JSON summary to this file")
    args = ap.parse_args(argv)
    token = args.token
    if args.token_file:
        lines = [ln.split() for ln in Path(args.token_file).read_text().splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            ap.error("--token-file has no token line")
        token = lines[-1][-1]
    checker = Checker(args.base_url, token, args.family, args.expect_patients)
    try:
        summary = checker.run()
    except Exception as e:  # noqa: BLE001 - last resort: still one JSON line, scrubbed
        checker.report.fail("run", "-", f"{type(e).__name__}: {e}")
        summary = checker.report.summary
        summary["ok"] = False
        summary["failures"] = checker.report.failures
    text = json.dumps(summary, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text, flush=True)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
