#!/usr/bin/env python3
"""Drive the ehr-sync web viewer in a real headless Chromium over the DevTools protocol.

Used by Tests/IntegrationTests/WebViewerTests.swift; runs in .build-venv (needs only the
standard library and `websockets`, pinned in Tests/harness/requirements.txt).

The flow, as a receptionist would do it during an outage:
  sign in with the form -> search a patient by name -> open the summary (allergies and
  current medications shown) -> enter a downtime note and vital signs -> back to the summary
  (the entry is marked as not yet sent) -> open the print view (screenshot and PDF).

Prints one JSON line: {"ok": true, "checks": {...}, "artifacts": [...]} or
{"ok": false, "error": "...", "checks": {...}} (exit status 1). No page content is printed
beyond the checks' booleans and the paths of the artefacts.
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.sync.client import connect


class CDP:
    """A minimal DevTools protocol session on one page target."""

    def __init__(self, ws_url):
        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.next_id = 0
        self.events = []

    def close(self):
        self.ws.close()

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        message_id = self.next_id
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {method}")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, name, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == name:
                    del self.events[: i + 1]
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {name} event")
            message = json.loads(self.ws.recv(timeout=remaining))
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def navigate(self, url):
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def click_and_wait(self, selector):
        """Clicks an element that loads a new page (a link, a submit button) and waits for it."""
        self.events.clear()
        found = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; e.click(); return true; }})()")
        if not found:
            raise RuntimeError(f"nothing matches {selector}")
        self.wait_event("Page.loadEventFired")

    def fill(self, selector, value):
        ok = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; e.value = {json.dumps(value)}; return true; }})()"
        )
        if not ok:
            raise RuntimeError(f"no field {selector}")

    def path(self):
        return self.evaluate("location.pathname")

    def screenshot(self, file):
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": max(1, size["width"]), "height": min(max(1, size["height"]), 8000), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        with open(file, "wb") as f:
            f.write(base64.b64decode(data))
        return file


def launch(chromium, profile):
    args = [
        chromium,
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--window-size=1280,1600",
        "--lang=fr-FR",
        "about:blank",
    ]
    # Chromium's sandbox cannot start as root nor in most CI containers; the browser only
    # loads the viewer's own pages from loopback here.
    args.insert(1, "--no-sandbox")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with status {process.returncode}")
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return process, int(lines[0])
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("chromium did not open its DevTools port")


def page_target(port):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
            for target in json.load(answer):
                if target.get("type") == "page" and target.get("webSocketDebuggerUrl"):
                    return target["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("no page target")


def run(options, checks, artifacts):
    os.makedirs(options.out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="ehr-sync-chromium-")
    process = None
    cdp = None
    try:
        process, port = launch(options.chromium, profile)
        cdp = CDP(page_target(port))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False)
        base = options.base.rstrip("/")

        # Any page without a session leads to the sign-in form.
        cdp.navigate(f"{base}/patients")
        checks["redirected_to_login"] = cdp.path() == "/login"
        cdp.screenshot(os.path.join(options.out, "01-login.png"))
        artifacts.append("01-login.png")

        cdp.fill("#name", options.user)
        cdp.fill("#password", options.password)
        cdp.click_and_wait("form[action='/login'] button[type=submit]")
        checks["signed_in"] = cdp.path() == "/patients"
        # The session cookie is HttpOnly: not visible to scripts.
        checks["cookie_hidden_from_scripts"] = "ehr_sync_session" not in (cdp.evaluate("document.cookie") or "")
        checks["banner_shown"] = bool(cdp.evaluate("!!document.querySelector('.banner')"))

        cdp.fill("#q", options.search)
        cdp.click_and_wait("form.search button[type=submit]")
        checks["search_found_patient"] = bool(
            cdp.evaluate(f"!!document.querySelector('a[href=\"/patients/{options.patient}\"]')")
        )
        cdp.screenshot(os.path.join(options.out, "02-search.png"))
        artifacts.append("02-search.png")

        cdp.click_and_wait(f"a[href=\"/patients/{options.patient}\"]")
        checks["summary_opened"] = cdp.path() == f"/patients/{options.patient}"
        checks["allergies_listed"] = cdp.evaluate("document.querySelectorAll('#allergies tbody tr').length") > 0
        checks["medications_listed"] = cdp.evaluate("document.querySelectorAll('#medications tbody tr').length") > 0
        checks["allergy_text_shown"] = options.allergy in (cdp.evaluate("document.querySelector('#allergies').innerText") or "")
        checks["medication_text_shown"] = options.medication in (
            cdp.evaluate("document.querySelector('#medications').innerText") or ""
        )
        checks["no_script_elements"] = cdp.evaluate("document.scripts.length") == 0
        cdp.screenshot(os.path.join(options.out, "03-summary.png"))
        artifacts.append("03-summary.png")

        # A downtime entry: a note and vital signs, with a French decimal comma.
        cdp.click_and_wait(f"a[href=\"/patients/{options.patient}/entry\"]")
        checks["entry_form_has_csrf"] = bool(cdp.evaluate("!!document.querySelector('form input[name=csrf]').value"))
        cdp.fill("#note", options.note)
        cdp.fill("#weight", "68,5")
        cdp.fill("#systolic", "132")
        cdp.fill("#diastolic", "84")
        cdp.screenshot(os.path.join(options.out, "04-entry.png"))
        artifacts.append("04-entry.png")
        cdp.click_and_wait(f"form[action=\"/patients/{options.patient}/entry\"] button[type=submit]")
        checks["entry_confirmed"] = bool(cdp.evaluate("!!document.querySelector('#entries')"))
        cdp.screenshot(os.path.join(options.out, "05-entry-confirmed.png"))
        artifacts.append("05-entry-confirmed.png")

        cdp.navigate(f"{base}/patients/{options.patient}")
        checks["pending_badge_shown"] = cdp.evaluate("document.querySelectorAll('.badge.pending').length") >= 2
        checks["note_shown"] = options.note in (cdp.evaluate("document.querySelector('#documents').innerText") or "") or bool(
            cdp.evaluate(
                f"[...document.querySelectorAll('#documents pre')].some(p => p.textContent.includes({json.dumps(options.note)}))"
            )
        )

        cdp.click_and_wait(f"a[href=\"/patients/{options.patient}/print\"]")
        checks["print_view_opened"] = cdp.path() == f"/patients/{options.patient}/print"
        checks["print_view_without_navigation"] = not cdp.evaluate("!!document.querySelector('nav')")
        checks["print_allergies_listed"] = cdp.evaluate("document.querySelectorAll('#allergies tbody tr').length") > 0
        cdp.screenshot(os.path.join(options.out, "06-print.png"))
        artifacts.append("06-print.png")
        pdf = cdp.call("Page.printToPDF", timeout=60, printBackground=False, preferCSSPageSize=True)["data"]
        with open(os.path.join(options.out, "06-print.pdf"), "wb") as f:
            f.write(base64.b64decode(pdf))
        artifacts.append("06-print.pdf")

        cdp.navigate(f"{base}/daysheet?ids={options.patient}")
        checks["day_sheet_listed"] = cdp.evaluate("document.querySelectorAll('.sheet').length") == 1
        cdp.screenshot(os.path.join(options.out, "07-daysheet.png"))
        artifacts.append("07-daysheet.png")

        # Signing out ends the session: the summary leads back to the sign-in form.
        cdp.navigate(f"{base}/patients")
        cdp.click_and_wait("form[action='/logout'] button[type=submit]")
        cdp.navigate(f"{base}/patients/{options.patient}")
        checks["signed_out"] = cdp.path() == "/login"
    finally:
        if cdp is not None:
            try:
                cdp.call("Browser.close", timeout=5)
            except Exception:
                pass
            try:
                cdp.close()
            except Exception:
                pass
        if process is not None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="viewer base URL, e.g. http://127.0.0.1:8090")
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", default="EHR_SYNC_WEB_PASSWORD", help="environment variable holding the password")
    parser.add_argument("--search", required=True, help="name typed into the search form")
    parser.add_argument("--patient", required=True, help="id of the patient expected in the results")
    parser.add_argument("--allergy", required=True, help="text expected in the allergies section")
    parser.add_argument("--medication", required=True, help="text expected in the medications section")
    parser.add_argument("--note", default="Consultation pendant la panne : RAS.")
    parser.add_argument("--out", required=True, help="folder for screenshots and the PDF")
    options = parser.parse_args()
    options.password = os.environ.get(options.password_env, "")
    checks = {}
    artifacts = []
    try:
        run(options, checks, artifacts)
    except Exception as error:  # report, never a traceback with page content
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}", "checks": checks, "artifacts": artifacts}))
        return 1
    failed = [name for name, passed in checks.items() if not passed]
    print(json.dumps({"ok": not failed, "failed": failed, "checks": checks, "artifacts": artifacts}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
