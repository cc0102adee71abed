import AsyncHTTPClient
import Foundation
import SyncModel
import SyncServer
import SyncTestSupport
import Testing

// The staff web viewer on a real ehr-syncd (its local API listener), mirroring `small` from a
// real sekmet-fhir EHR: what is served without a session (nothing), sign-in and its
// throttle, pages, CSRF, session expiry, the audit trail; then a real headless Chromium.

/// A plain HTTP client that does not follow redirects and keeps no cookies: each request
/// carries exactly the cookie the test gives it.
private let webHTTP = HTTPClient(configuration: .init(redirectConfiguration: .disallow))

private struct WebAnswer {
    var status: Int
    /// (lowercased name, value), every field.
    var fields: [(String, String)]
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { fields.first { $0.0 == name.lowercased() }?.1 }
    var location: String? { header("location") }
    var setCookie: String? { header("set-cookie") }

    /// The session token a sign-in set, if any.
    var sessionToken: String? {
        guard let cookie = setCookie, cookie.hasPrefix("ehr_sync_session="), let end = cookie.firstIndex(of: ";")
        else { return nil }
        let token = String(cookie[cookie.index(cookie.startIndex, offsetBy: "ehr_sync_session=".count)..<end])
        return token.isEmpty ? nil : token
    }
}

private struct Viewer {
    let base: String

    init(port: Int) { base = "http://127.0.0.1:\(port)" }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? ""
    }

    static func form(_ fields: [(String, String)]) -> String {
        fields.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
    }

    func request(
        _ method: String, _ path: String, token: String? = nil, form: [(String, String)]? = nil,
        language: String = "fr-FR,fr;q=0.9", cookie: String? = nil
    ) async throws -> WebAnswer {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        request.headers.add(name: "Connection", value: "close")
        request.headers.add(name: "Accept-Language", value: language)
        if let token { request.headers.add(name: "Cookie", value: "ehr_sync_session=\(token)") }
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(Array(Self.form(form).utf8))
        }
        let response = try await webHTTP.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        return WebAnswer(
            status: Int(response.status.code), fields: response.headers.map { ($0.name.lowercased(), $0.value) },
            body: Data(buffer.readableBytesView))
    }

    func get(_ path: String, token: String? = nil) async throws -> WebAnswer {
        try await request("GET", path, token: token)
    }

    func post(_ path: String, token: String? = nil, form: [(String, String)]) async throws -> WebAnswer {
        try await request("POST", path, token: token, form: form)
    }

    /// Signs in; returns the session token (nil when refused).
    func signIn(_ name: String, _ password: String) async throws -> String? {
        let answer = try await attemptSignIn(name, password)
        return answer.status == 303 ? answer.sessionToken : nil
    }

    /// Posts the sign-in form as a browser does: the form's CSRF token and its cookie first.
    func attemptSignIn(_ name: String, _ password: String) async throws -> WebAnswer {
        let page = try await get("/login")
        let csrf = try #require(Self.csrf(in: page.text), "no CSRF token in the sign-in form")
        let cookie = try #require(page.setCookie?.split(separator: ";").first.map(String.init))
        return try await request(
            "POST", "/login", form: [("name", name), ("password", password), ("csrf", csrf)], cookie: cookie)
    }

    /// The CSRF token in a page's forms.
    static func csrf(in page: String) -> String? {
        guard let range = page.range(of: "name=\"csrf\" value=\"") else { return nil }
        let rest = page[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}

/// The patient of `small` the tests look at: the one with the most allergies, with what the
/// pages must show of it (read from the data set, not from the replica).
private struct TestPatient {
    var id: String
    var family: String
    var birthDate: String
    var ssn: String
    var allergy: String
    var activeMedication: String
    var note: (documentID: String, text: String)
    /// Every family name of the data set: none may be served without a session.
    var allFamilies: [String]

    static func load() throws -> TestPatient {
        func objects(_ type: String) throws -> [[String: Any]] {
            try TestData.lines("small", type: type).compactMap {
                try JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }
        }
        func owner(_ o: [String: Any]) -> String? {
            ((o["patient"] ?? o["subject"]) as? [String: Any])?["reference"].flatMap { $0 as? String }
                .map { String($0.split(separator: "/").last ?? "") }
        }
        func text(_ concept: Any?) -> String? {
            let c = concept as? [String: Any]
            return c?["text"] as? String ?? (c?["coding"] as? [[String: Any]])?.first?["display"] as? String
        }
        let patients = try objects("Patient")
        let allergies = try objects("AllergyIntolerance")
        let counts = Dictionary(grouping: allergies, by: { owner($0) ?? "" }).mapValues(\.count)
        let patient = try #require(
            patients.max {
                counts[$0["id"] as? String ?? "", default: 0] < counts[$1["id"] as? String ?? "", default: 0]
            })
        let id = try #require(patient["id"] as? String)
        let name = try #require((patient["name"] as? [[String: Any]])?.first)
        let identifiers = patient["identifier"] as? [[String: Any]] ?? []
        let ssn = try #require(
            identifiers.first { ($0["system"] as? String) == "http://hl7.org/fhir/sid/us-ssn" }?["value"] as? String)
        let allergy = try #require(allergies.first { owner($0) == id }.flatMap { text($0["code"]) })
        let medication = try #require(
            try objects("MedicationRequest").first {
                owner($0) == id && $0["status"] as? String == "active" && $0["medicationCodeableConcept"] != nil
            }.flatMap { text($0["medicationCodeableConcept"]) })
        let document = try #require(try objects("DocumentReference").filter { owner($0) == id }.last)
        let attachment = ((document["content"] as? [[String: Any]])?.first?["attachment"] as? [String: Any])
        let noteData = try #require(Data(base64Encoded: attachment?["data"] as? String ?? ""))
        return TestPatient(
            id: id, family: try #require(name["family"] as? String),
            birthDate: try #require(patient["birthDate"] as? String), ssn: ssn, allergy: allergy,
            activeMedication: medication,
            note: (try #require(document["id"] as? String), String(decoding: noteData, as: UTF8.self)),
            allFamilies: patients.compactMap { (($0["name"] as? [[String: Any]])?.first?["family"] as? String) })
    }
}

private let protectiveHeaders = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    ("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"), ("cache-control", "no-store"),
]

private func expectProtectiveHeaders(
    _ answer: WebAnswer, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    for (name, value) in protectiveHeaders {
        #expect(answer.header(name) == value, "\(name) on \(what)", sourceLocation: sourceLocation)
    }
}

private let password = "correct horse battery staple"

/// Creates staff accounts in the daemon's replica (the daemon must be stopped).
private func addAccounts(_ fixture: DaemonFixture, _ accounts: [(name: String, language: String, disabled: Bool)])
    throws
{
    let replica = try fixture.openReplica()
    defer { replica.close() }
    let now = FHIRInstant.format(Date().timeIntervalSince1970)
    for account in accounts {
        try replica.accounts.save(
            StaffAccount(
                name: account.name, displayName: "Dr \(account.name.capitalized)", language: account.language,
                disabled: account.disabled, passwordHash: try PasswordHash.make(password), createdAt: now,
                passwordChangedAt: now),
            actor: "test", action: "user-add")
    }
}

/// Polls an async condition until it holds or `timeout` passes.
private func eventually(timeout: Double = 60, interval: Double = 0.2, _ condition: () async throws -> Bool)
    async rethrows -> Bool
{
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
    }
    return try await condition()
}

/// Starts the daemon and waits for the viewer to answer, and (with an EHR) for the first
/// copy to be complete.
private func startViewer(_ fixture: DaemonFixture, online: Bool) async throws -> Viewer {
    let access = try #require(fixture.localAPI)
    try fixture.start()
    let viewer = Viewer(port: access.port)
    if online {
        let ok = DaemonFixture.waitUntil(timeout: 180, interval: 0.2) {
            guard let status = try? fixture.status() else { return false }
            return status.initialSyncComplete && status.state == "online"
        }
        try #require(ok, "never online; log:\n\(fixture.log.suffix(2000))")
    }
    let answering = await eventually { (try? await viewer.get("/login"))?.status == 200 }
    try #require(answering, "the viewer never answered; log:\n\(fixture.log.suffix(2000))")
    return viewer
}

/// A pending-outbox count from status (local changes not yet on the EHR).
private func unsent(_ fixture: DaemonFixture) throws -> Int? {
    guard let s = try fixture.status() else { return nil }
    return s.outboxPending + s.outboxWaiting + s.outboxParked + s.conflicts
}

@Suite(.serialized) struct WebViewerTests {
    @Test func staffSeeRecordsOnlyWithASessionAndEveryAccessIsAudited() async throws {
        let patient = try TestPatient.load()
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        // A scanned letter the EHR serves by URL: fetched into the replica by the mirror.
        let server = ServerClient(baseURL: fhir.baseURL)
        let letter = Data("%PDF-1.4 synthetic scanned letter".utf8)
        #expect(
            try await server.put([
                "resourceType": "Binary", "id": "web-scan-1", "contentType": "application/pdf",
                "data": letter.base64EncodedString(),
            ]) < 300)
        #expect(
            try await server.put([
                "resourceType": "DocumentReference", "id": "web-letter", "status": "current",
                "subject": ["reference": "Patient/\(patient.id)"], "type": ["text": "Scanned letter"],
                "date": "2025-01-02T10:00:00Z",
                "content": [
                    ["attachment": ["contentType": "application/pdf", "url": "\(fhir.baseURL)/Binary/web-scan-1"]]
                ],
            ]) < 300)

        let types = try TestData.loadOrder("small")
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(types))\npoll_interval = 1",
            ehr: "requests_per_second = 1000\nconnect_timeout = 1\nrequest_timeout = 5",
            extra: "[replay]\nstart_jitter = 0", localAPIAuthor: "web-test")
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")
        try addAccounts(fixture, [("dr.martin", "fr", false), ("amelie", "en", false), ("old.locum", "fr", true)])
        let viewer = try await startViewer(fixture, online: true)
        defer { fixture.stop() }

        // 1. Without a session: nothing but the way to the sign-in page.
        let id = patient.id
        let pages = [
            "/", "/patients", "/patients?q=\(Viewer.encode(patient.family))", "/patients/\(id)",
            "/patients/\(id)/print",
            "/patients/\(id)/entry", "/daysheet?ids=\(id)",
            "/patients/\(id)/documents/\(patient.note.documentID)/attachment/0",
            "/patients/\(id)/documents/web-letter/attachment/0",
        ]
        let forged = SessionStore.randomToken()
        for path in pages {
            for token in [nil, forged] {
                let answer = try await viewer.get(path, token: token)
                #expect(answer.status == 303, "GET \(path)")
                #expect(answer.location == "/login", "GET \(path)")
                for family in patient.allFamilies { #expect(!answer.text.contains(family), "GET \(path)") }
            }
        }
        for path in ["/patients/\(id)/entry", "/logout"] {
            let answer = try await viewer.post(path, token: forged, form: [("note", "x"), ("csrf", "x")])
            #expect(answer.status == 401, "POST \(path)")
            for family in patient.allFamilies { #expect(!answer.text.contains(family), "POST \(path)") }
        }
        let loginPage = try await viewer.get("/login")
        #expect(loginPage.status == 200)
        #expect(loginPage.text.contains("Connexion"))
        expectProtectiveHeaders(loginPage, "/login")

        // 2. Sign-in: one message whatever went wrong; no cookie.
        for (name, pw) in [("dr.martin", "wrong password!"), ("nobody", password), ("old.locum", password)] {
            let refused = try await viewer.attemptSignIn(name, pw)
            #expect(refused.status == 401, "\(name)")
            #expect(refused.text.contains("Échec de la connexion : identifiant ou mot de passe incorrect."), "\(name)")
            #expect(refused.sessionToken == nil, "\(name)")
        }
        // Login CSRF: a form posted without the sign-in page's token (another site's form) is refused.
        let forgedLogin = try await viewer.post("/login", form: [("name", "dr.martin"), ("password", password)])
        #expect(forgedLogin.status == 403 && forgedLogin.sessionToken == nil)
        let signIn = try await viewer.attemptSignIn("dr.martin", password)
        #expect(signIn.status == 303)
        #expect(signIn.location == "/patients")
        let cookie = try #require(signIn.setCookie)
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            #expect(cookie.contains("; \(attribute)"), "\(attribute)")
        }
        let token = try #require(signIn.sessionToken)

        // 3. Search by name, birth date (ISO or French), identifier.
        let home = try await viewer.get("/patients", token: token)
        #expect(home.status == 200)
        #expect(home.text.contains("Rechercher un patient"))
        #expect(home.text.contains("DME en ligne"))
        #expect(home.text.contains("Connecté : Dr Dr.Martin"))
        expectProtectiveHeaders(home, "/patients")
        let parts = patient.birthDate.split(separator: "-")
        for query in [
            "q=\(Viewer.encode(patient.family))", "birthdate=\(patient.birthDate)",
            "birthdate=\(parts[2])%2F\(parts[1])%2F\(parts[0])", "identifier=\(patient.ssn)",
        ] {
            let found = try await viewer.get("/patients?\(query)", token: token)
            #expect(found.status == 200, "\(query)")
            #expect(found.text.contains("href=\"/patients/\(id)\""), "\(query)")
        }
        let nothing = try await viewer.get("/patients?q=Zzyzxquux", token: token)
        #expect(nothing.text.contains("Aucun patient trouvé."))

        // 4. The summary, its print view and the day sheet.
        let summary = try await viewer.get("/patients/\(id)", token: token)
        #expect(summary.status == 200)
        expectProtectiveHeaders(summary, "summary")
        for section in ["allergies", "problems", "medications", "encounters", "results", "immunizations", "documents"] {
            #expect(summary.text.contains("<section id=\"\(section)\">"), "\(section)")
        }
        #expect(summary.text.contains(HTML.escape(patient.allergy)))
        #expect(summary.text.contains(HTML.escape(patient.activeMedication)))
        #expect(summary.text.contains("Allergies et intolérances"))
        let csrf = try #require(Viewer.csrf(in: summary.text))
        let print = try await viewer.get("/patients/\(id)/print", token: token)
        #expect(print.status == 200)
        #expect(!print.text.contains("<nav"))
        #expect(print.text.contains("Imprimé par"))
        let other = try #require(
            try TestData.lines("small", type: "Patient").compactMap {
                (try JSONSerialization.jsonObject(with: $0) as? [String: Any])?["id"] as? String
            }.first { $0 != id })
        let daySheet = try await viewer.get("/daysheet?ids=\(id),\(other)", token: token)
        #expect(daySheet.status == 200)
        #expect(daySheet.text.components(separatedBy: "<div class=\"sheet\">").count - 1 == 2)

        // 5. Attachments: an inline note, a letter stored from its URL; only under their patient.
        let note = try await viewer.get(
            "/patients/\(id)/documents/\(patient.note.documentID)/attachment/0", token: token)
        #expect(note.status == 200)
        #expect(note.text == patient.note.text)
        #expect(note.header("content-disposition")?.hasPrefix("attachment") == true)
        expectProtectiveHeaders(note, "attachment")
        let scan = try await viewer.get("/patients/\(id)/documents/web-letter/attachment/0", token: token)
        #expect(scan.status == 200, "log:\n\(fixture.log.suffix(1500))")
        #expect(scan.body == letter)
        #expect(scan.header("content-type") == "application/pdf")
        #expect(
            try await viewer.get("/patients/\(other)/documents/web-letter/attachment/0", token: token).status == 404)

        // 6. The EHR goes dark: the banner says so.
        fhir.stop()
        let dark = await eventually(timeout: 90) {
            let page = try? await viewer.get("/patients", token: token)
            return page?.text.contains("DME injoignable depuis") ?? false
        }
        #expect(dark, "banner never showed the outage; log:\n\(fixture.log.suffix(1500))")

        // 7. CSRF: without the token or with another, nothing is queued.
        let before = try #require(try unsent(fixture))
        let entry = [
            ("note", "Vu pendant la panne."), ("weight", "72,5"), ("systolic", "128"), ("diastolic", "82"),
            ("temperature", "37,2"),
        ]
        for form in [entry, entry + [("csrf", "")], entry + [("csrf", SessionStore.randomToken())]] {
            let refused = try await viewer.post("/patients/\(id)/entry", token: token, form: form)
            #expect(refused.status == 403)
        }
        let refusedLogout = try await viewer.post("/logout", token: token, form: [("csrf", "nope")])
        #expect(refusedLogout.status == 403)
        let invalid = try await viewer.post(
            "/patients/\(id)/entry", token: token, form: [("weight", "abc"), ("csrf", csrf)])
        #expect(invalid.status == 422)
        #expect(invalid.text.contains("Poids (kg) : ce n’est pas un nombre"))
        #expect(try unsent(fixture) == before)

        // 8. A downtime entry with the right token: four changes queued, marked in the summary.
        let saved = try await viewer.post("/patients/\(id)/entry", token: token, form: entry + [("csrf", csrf)])
        #expect(saved.status == 200, "\(saved.text.prefix(500))")
        #expect(saved.text.contains("Entrées de la file d’envoi : "))
        #expect(try unsent(fixture) == before + 4)
        let marked = try await viewer.get("/patients/\(id)", token: token)
        #expect(marked.text.contains("pas encore transmis au DME"))
        #expect(marked.text.contains("Vu pendant la panne."))
        #expect(marked.text.contains("72,5 kg"))

        // 9. An English-speaking colleague sees English pages.
        let amelie = try #require(try await viewer.signIn("amelie", password))
        let english = try await viewer.get("/patients/\(id)", token: amelie)
        #expect(english.text.contains("Allergies and intolerances"))
        #expect(english.text.contains("EHR unreachable since"))
        #expect(english.text.contains("not yet sent to the EHR"))

        // 10. Signing out ends the session.
        let out = try await viewer.post("/logout", token: token, form: [("csrf", csrf)])
        #expect(out.status == 303)
        #expect(out.location == "/login")
        #expect(try await viewer.get("/patients/\(id)", token: token).status == 303)

        // 11. The audit trail has every access, and nothing of it reached the log.
        fixture.stop()
        let replica = try fixture.openReplica()
        defer { replica.close() }
        let records = try replica.audit.records()
        func has(_ action: String, actor: String = "dr.martin", patient: String? = id) -> Bool {
            records.contains { $0.action == action && $0.actor == actor && (patient == nil || $0.patient == patient) }
        }
        for action in ["view-summary", "print", "daysheet", "attachment", "entry"] {
            #expect(has(action), "\(action)")
        }
        #expect(has("daysheet", patient: other))
        #expect(has("search", patient: nil))
        #expect(has("sign-in", patient: nil) && has("sign-out", patient: nil))
        #expect(has("view-summary", actor: "amelie"))
        if case .failure(let broken) = try replica.audit.verify() { Issue.record("audit chain broken: \(broken)") }
        let log = fixture.log
        for needle in [patient.family, patient.ssn, "Vu pendant la panne", password] {
            #expect(!log.contains(needle), "the daemon log carries PHI or a password")
        }
    }

    /// A reception account (`syncctl user add --role reception`) finds patients, sees who
    /// they are and prints day lists, but no clinical content reaches it: no allergy, problem,
    /// medication or note on any page, no attachment, no downtime entry. Made a clinician
    /// (`syncctl user role`), it is signed out and sees everything once signed in again.
    @Test func receptionSeesWhoButNoClinicalContent() async throws {
        let patient = try TestPatient.load()
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let types = try TestData.loadOrder("small")
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(types))\npoll_interval = 3600",
            ehr: "requests_per_second = 1000", localAPIAuthor: "web-test")
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")
        let viewer = try await startViewer(fixture, online: true)
        defer { fixture.stop() }
        let added = try fixture.ctl(["user", "add", "accueil", "--role", "reception"], input: password + "\n")
        #expect(added.status == 0 && added.output.contains("role reception"), "\(added.output)")
        let badRole = try fixture.ctl(["user", "add", "other", "--role", "admin"], input: password + "\n")
        #expect(badRole.status != 0)
        let list = try fixture.ctl(["user", "list", "--json"])
        let users = try JSONDecoder().decode([StaffAccountSummary].self, from: Data(list.output.utf8))
        #expect(users.map(\.role) == [.reception])

        let token = try #require(try await viewer.signIn("accueil", password))
        let id = patient.id
        let found = try await viewer.get("/patients?q=\(Viewer.encode(patient.family))", token: token)
        #expect(found.status == 200 && found.text.contains("/patients/\(id)"), "search")
        let clinical = [patient.allergy, patient.activeMedication, patient.note.text.prefix(40).description]
        for path in ["/patients/\(id)", "/patients/\(id)/print", "/daysheet?ids=\(id)"] {
            let page = try await viewer.get(path, token: token)
            #expect(page.status == 200, "GET \(path)")
            #expect(page.text.contains(patient.family), "GET \(path) shows who")
            for text in clinical { #expect(!page.text.contains(text), "GET \(path) shows clinical content") }
        }
        let summary = try await viewer.get("/patients/\(id)", token: token)
        #expect(summary.text.contains("Les données cliniques ne sont pas affichées"))
        #expect(!summary.text.contains("/entry") && !summary.text.contains("/attachment/"))
        for path in [
            "/patients/\(id)/entry", "/patients/\(id)/documents/\(patient.note.documentID)/attachment/0",
        ] {
            let refused = try await viewer.get(path, token: token)
            #expect(refused.status == 403, "GET \(path)")
            for text in clinical { #expect(!refused.text.contains(text), "GET \(path)") }
        }
        let csrf = try #require(Viewer.csrf(in: summary.text))
        let entry = try await viewer.post(
            "/patients/\(id)/entry", token: token, form: [("csrf", csrf), ("note", "from reception")])
        #expect(entry.status == 403)
        #expect(try fixture.outbox(all: true)?.isEmpty == true, "nothing queued by a reception account")

        // Made a clinician: signed out, then sees the clinical record.
        let promoted = try fixture.ctl(["user", "role", "accueil", "clinician"])
        #expect(promoted.status == 0, "\(promoted.output)")
        #expect(try await viewer.get("/patients/\(id)", token: token).status == 303)
        let again = try #require(try await viewer.signIn("accueil", password))
        #expect(try await viewer.get("/patients/\(id)", token: again).text.contains(patient.allergy))

        let trail = try fixture.ctl(["audit", "list", "--json", "--limit", "0", "--user", "accueil"])
        let records = try JSONDecoder().decode([AuditRecord].self, from: Data(trail.output.utf8))
        for action in ["search", "view-summary", "print", "daysheet"] {
            #expect(records.contains { $0.action == action && $0.patient == id }, "\(action) attributed")
        }
        let changes = try fixture.ctl(["audit", "list", "--json", "--limit", "0"])
        #expect(changes.output.contains("\"user-role\""))
    }

    @Test func sessionsEndWhenIdleAndRepeatedFailuresAreThrottled() async throws {
        // No EHR at all: the viewer works on the local copy alone.
        let fixture = try DaemonFixture(
            baseURL: "http://127.0.0.1:\(freeLoopbackPort())/fhir", ehr: "connect_timeout = 1",
            extra: "[web]\nsession_idle_timeout = 2", localAPIAuthor: "web-test")
        try addAccounts(fixture, [("dr.martin", "en", false)])
        let viewer = try await startViewer(fixture, online: false)
        defer { fixture.stop() }

        let token = try #require(try await viewer.signIn("dr.martin", password))
        #expect(try await viewer.get("/patients", token: token).status == 200)
        // Each check touches a live session, so checks are spaced wider than the timeout.
        let expired = try await eventually(timeout: 30, interval: 2.5) {
            try await viewer.get("/patients", token: token).status == 303
        }
        #expect(expired, "the session outlived its idle timeout")
        #expect(try await viewer.post("/logout", token: token, form: [("csrf", "x")]).status == 401)

        // Failed sign-ins are throttled: then even the right password waits.
        var throttled: WebAnswer?
        for _ in 0..<8 {
            let answer = try await viewer.attemptSignIn("dr.martin", "not the password")
            if answer.status == 429 {
                throttled = answer
                break
            }
            #expect(answer.status == 401)
        }
        #expect(throttled != nil, "never throttled")
        let right = try await viewer.attemptSignIn("dr.martin", password)
        #expect(right.status == 429)
        #expect(right.sessionToken == nil)
        let retryAfter = try #require(right.header("retry-after").flatMap { Int($0) })
        #expect(retryAfter > 0)
        #expect(right.text.contains("Réessayez dans") || right.text.contains("Try again in"))
    }

    static let chromium: String? = {
        if let path = ProcessInfo.processInfo.environment["EHR_SYNC_CHROMIUM"], !path.isEmpty { return path }
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
                let path = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
        }
        return nil
    }()

    @Test(
        .enabled(if: chromium != nil, "Chromium is not installed (apt-get install -y chromium); browser test skipped"))
    func aBrowserSignsInFindsAPatientEntersVitalsAndPrints() async throws {
        let chromium = try #require(Self.chromium)
        let patient = try TestPatient.load()
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let types = try TestData.loadOrder("small")
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(types))\npoll_interval = 1",
            ehr: "requests_per_second = 1000\nconnect_timeout = 1\nrequest_timeout = 5",
            extra: "[replay]\nstart_jitter = 0", localAPIAuthor: "web-test")
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")
        try addAccounts(fixture, [("dr.martin", "fr", false)])
        let viewer = try await startViewer(fixture, online: true)
        defer { fixture.stop() }
        // During an outage, as the viewer is meant to be used (and the entry stays pending).
        fhir.stop()
        let dark = DaemonFixture.waitUntil(timeout: 90, interval: 0.2) {
            (try? fixture.status())?.state == "outage"
        }
        #expect(dark, "never in outage")

        let out = TestData.repositoryRoot + "/.build/test-artifacts/web"
        try? FileManager.default.removeItem(atPath: out)
        let python = TestData.repositoryRoot + "/.build-venv/bin/python3"
        var environment = ProcessInfo.processInfo.environment
        environment["EHR_SYNC_WEB_PASSWORD"] = password
        let (status, output) = try run(
            python,
            [
                TestData.repositoryRoot + "/Tests/harness/browser_viewer_check.py", "--base", viewer.base,
                "--chromium", chromium, "--user", "dr.martin", "--search", patient.family, "--patient", patient.id,
                "--allergy", patient.allergy, "--medication", patient.activeMedication, "--out", out,
            ], environment: environment)
        let report = output.split(separator: "\n").last.flatMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(status == 0 && report?["ok"] as? Bool == true, "browser check: \(output.suffix(3000))")
        for file in ["01-login.png", "03-summary.png", "06-print.png", "06-print.pdf"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(file)"), "\(file)")
        }
        #expect(try unsent(fixture).map { $0 >= 3 } == true, "the browser's entry was not queued")
    }
}
