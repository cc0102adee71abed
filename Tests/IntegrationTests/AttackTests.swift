import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The attack suite (#13): each test does one attack an insider or a neighbour on the
/// practice's network would try against the real daemon, and asserts that it now fails, or
/// that it is recorded and alerted.
@Suite(.serialized) struct AttackTests {
    /// A daemon that mirrored `small` (Patients and Observations), its local API up.
    struct Rig {
        let fhir: FHIRTestServer
        let fixture: DaemonFixture
        let api: LocalAPIClient

        static func start(
            sync: String = "", extra: String = "", author: String = "attacker", moreTokens: String = "",
            localAPI: String = ""
        ) async throws -> Rig {
            let fhir = try await FHIRTestServer.start(dataset: "small")
            let fixture = try DaemonFixture(
                baseURL: fhir.baseURL,
                sync: "resource_types = [\"Patient\", \"Encounter\", \"Observation\"]\npoll_interval = 3600\n\(sync)",
                extra: extra, localAPIAuthor: author, localAPIExtra: localAPI)
            if !moreTokens.isEmpty, let access = fixture.localAPI {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: access.tokenFile))
                handle.seekToEndOfFile()
                handle.write(Data(moreTokens.utf8))
                try handle.close()
            }
            #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(3000))")
            try fixture.start()
            let api = try #require(fixture.localAPI).client()
            let up = await eventually { (try? await api.request(.GET, "metadata"))?.status == 200 }
            try #require(up, "the local API did not answer; log:\n\(fixture.log.suffix(2000))")
            return Rig(fhir: fhir, fixture: fixture, api: api)
        }

        func stop() {
            fixture.stop()
            fhir.stop()
        }

        func audit(_ filters: [String] = []) throws -> [AuditRecord] {
            let (status, output) = try fixture.ctl(["audit", "list", "--json", "--limit", "0"] + filters)
            #expect(status == 0, "\(output)")
            return (try? JSONDecoder().decode([AuditRecord].self, from: Data(output.utf8))) ?? []
        }
    }

    /// 1. A version read (`_history/vid`) returns the record: it is in the trail, naming the patient.
    @Test func versionReadIsAttributed() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let line = try #require(try TestData.lines("small", type: "Patient").first)
        let id = try #require((try JSONSerialization.jsonObject(with: line) as? [String: Any])?["id"] as? String)
        let read = try await rig.api.read("Patient", id)
        let version = try #require((read.json?["meta"] as? [String: Any])?["versionId"] as? String)
        let vread = try await rig.api.request(.GET, "Patient/\(id)/_history/\(version)")
        #expect(vread.status == 200)
        let lines = try rig.audit(["--patient", id]).filter { $0.target == "Patient/\(id)/_history/\(version)" }
        #expect(lines.count == 1 && lines.first?.actor == "attacker", "\(lines)")
    }

    /// 2. Paging through a whole type without `patient` (and `_include`) names every patient
    /// shown, and the unusual-reading alert fires for the token.
    @Test func bulkSearchWithoutPatientIsAttributedAndAlerted() async throws {
        let rig = try await Rig.start(extra: "[audit]\nalert_patients = 5")
        defer { rig.stop() }
        let page = try await rig.api.request(.GET, "Encounter?_count=50&_include=Encounter:subject")
        #expect(page.status == 200)
        let shown = Set(
            (page.json?["entry"] as? [[String: Any]] ?? []).compactMap { entry -> String? in
                let resource = entry["resource"] as? [String: Any]
                if resource?["resourceType"] as? String == "Patient" { return resource?["id"] as? String }
                let subject = (resource?["subject"] as? [String: Any])?["reference"] as? String
                return subject.map { String($0.dropFirst("Patient/".count)) }
            })
        #expect(shown.count > 5, "the page shows several patients")
        let searched = Set(
            try rig.audit(["--user", "attacker"]).filter { $0.action == "search" }.compactMap(\.patient))
        #expect(searched == shown, "every patient the page showed is named in the trail")
        let alerts = try #require(try rig.fixture.status()).accessAlerts
        #expect(alerts.contains { $0.account == "attacker" && $0.patients > 5 }, "\(alerts)")
    }

    /// 3. A staff member uses admin commands over the control socket, claiming to be root:
    /// refused by the kernel-named role, recorded under the real user; an admin gets through.
    @Test(.enabled(if: getuid() == 0, "needs root to run syncctl as other users"))
    func staffCannotUseAdminCommands() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = [\"Patient\"]\npoll_interval = 3600",
            extra: "staff_group = \"users\"\nadmin_group = \"adm\"")
        try fixture.start()
        defer { fixture.stop() }
        #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
        // Others reach the socket through its folder (the daemon gives the socket to the staff group).
        chmod(fixture.dir.path, 0o711)
        let syncctl = fixture.dir.file("syncctl")
        try FileManager.default.copyItem(atPath: DaemonFixture.binDir + "/syncctl", toPath: syncctl)
        chmod(syncctl, 0o755)
        func ctl(gid: Int, groups: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
            try run(
                "/usr/bin/setpriv",
                ["--reuid=65534", "--regid=\(gid)", "--groups=\(groups)", "--", syncctl]
                    + arguments + ["--socket", fixture.socketPath],
                environment: ["USER": "root", "PATH": "/usr/bin:/bin"])
        }
        // Staff (group users): the daily commands work…
        let status = try ctl(gid: 100, groups: "100", ["status"])
        #expect(status.status != 2 && !status.output.contains("refused"), "\(status.output)")
        // …the administrator's do not, whatever name the client claims.
        for attack in [
            ["key", "backup", "--replace"], ["user", "list"], ["audit", "list"], ["held", "list"], ["pause"],
        ] {
            let result = try ctl(gid: 100, groups: "100", attack)
            #expect(
                result.status != 0 && result.output.contains("needs an administrator"), "\(attack): \(result.output)")
        }
        // Someone outside the staff group cannot even connect.
        let stranger = try ctl(gid: 65534, groups: "65534", ["status"])
        #expect(stranger.status != 0)
        // An administrator (group adm, reaching the socket as staff) gets through.
        let admin = try ctl(gid: 4, groups: "100", ["audit", "verify"])
        #expect(admin.status == 0, "\(admin.output)")
        // The refusals are in the trail under the peer's real user, never the claimed one.
        let (_, output) = try fixture.ctl(["audit", "list", "--json", "--limit", "0"])
        let trail = try JSONDecoder().decode([AuditRecord].self, from: Data(output.utf8))
        let refused = trail.filter { $0.action == "control-refused" }
        #expect(refused.count == 5 && refused.allSatisfy { $0.actor == "nobody (uid 65534)" }, "\(refused)")
        #expect(refused.map(\.target) == ["key-backup", "user-list", "audit-list", "held", "pause"])
        #expect(!trail.contains { $0.action == "key-backup" }, "no recovery key was minted")
        #expect(
            trail.contains { $0.action == "audit-verify" && $0.actor == "nobody (uid 65534)" }, "the admin's action")
        #expect(
            !trail.contains { $0.actor.hasPrefix("root") && $0.action != "audit-list" }, "the claimed name is ignored")
    }
}

extension AttackTests {
    /// 4. The trail emptied, or replaced by an older copy (a backup of the replica): the first
    /// never verifies; the second verifies locally but not against the EHR, which holds the
    /// reads as AuditEvents. Both are critical in status and exit 2 from `audit verify`.
    @Test func emptiedOrRolledBackTrailIsFound() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let fixture = rig.fixture
        let ids = try TestData.lines("small", type: "Patient").prefix(4).map {
            try #require((try JSONSerialization.jsonObject(with: $0) as? [String: Any])?["id"] as? String)
        }
        func readAndWitness(_ patients: ArraySlice<String>) async throws {
            for id in patients { #expect(try await rig.api.read("Patient", id).status == 200) }
            #expect(try fixture.ctl(["sync-now"]).status == 0)
            let held = DaemonFixture.waitUntil(timeout: 60) {
                guard let trail = (try? fixture.status())??.auditTrail else { return false }
                return trail.intact && trail.witness.hasPrefix("all ")
            }
            #expect(held, "\(String(describing: (try? fixture.status())??.auditTrail))")
        }
        try await readAndWitness(ids.prefix(2))
        // The reads are on the EHR, as AuditEvents naming the patient and the reader.
        let ehr = LocalAPIClient(baseURL: rig.fhir.baseURL, token: nil)
        let events = try await ehr.request(.GET, "AuditEvent?patient=Patient/\(ids[0])")
        #expect(events.status == 200)
        let witnessed = (events.json?["entry"] as? [[String: Any]] ?? []).compactMap {
            $0["resource"] as? [String: Any]
        }
        #expect(
            witnessed.contains {
                (($0["agent"] as? [[String: Any]])?.first?["who"] as? [String: Any])?["display"] as? String
                    == "attacker"
            }, "\(witnessed)")

        // A copy of the replica taken now, more reads witnessed, then the copy put back.
        #expect(fixture.stop() == 0)
        let backup = fixture.dir.file("state-backup")
        try FileManager.default.copyItem(atPath: fixture.stateDir, toPath: backup)
        try fixture.start()
        #expect(await eventually { (try? await rig.api.request(.GET, "metadata"))?.status == 200 })
        try await readAndWitness(ids.dropFirst(2))
        #expect(fixture.stop() == 0)
        try FileManager.default.removeItem(atPath: fixture.stateDir)
        try FileManager.default.copyItem(atPath: backup, toPath: fixture.stateDir)
        try fixture.start()
        #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
        let rolledBack = try fixture.ctl(["audit", "verify"])
        #expect(rolledBack.status == 2 && rolledBack.output.contains("the EHR witnessed"), "\(rolledBack.output)")
        let status = try fixture.ctl(["status"])
        #expect(status.status == 2 && status.output.contains("Audit trail"), "\(status.output)")

        // Emptied: every line and the head deleted.
        #expect(fixture.stop() == 0)
        let emptied = try fixture.sqlite("DELETE FROM audit_log; DELETE FROM replica_meta WHERE name = 'audit_head';")
        #expect(emptied.status == 0, "\(emptied.output)")
        try fixture.start()
        #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
        let verify = try fixture.ctl(["audit", "verify"])
        #expect(verify.status == 2 && verify.output.contains("head missing"), "\(verify.output)")
        let report = try #require(try fixture.status())
        #expect(report.exitCode == 2 && report.auditTrail?.intact == false, "\(String(describing: report.auditTrail))")
    }
}

extension AttackTests {
    /// 7. With the daemon stopped, someone with the replica file and the `sqlite3` shell
    /// deletes a record, puts an older sealed version of a record back, revives a disabled
    /// account from its earlier row and deletes a queued downtime note. A plain write fails
    /// (the integrity triggers need the daemon's functions); with the triggers set aside and
    /// put back, each tamper is found: the three the check at start covers are critical in
    /// status from the first moment, and `syncctl verify` names all four.
    @Test func rowsDeletedRestoredOrRevivedAreFound() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let fixture = rig.fixture
        func sql(_ text: String) throws -> (status: Int32, output: String) { try fixture.sqlite(text) }

        // An account, as it is while enabled; then disabled.
        #expect(try fixture.ctl(["user", "add", "drb"], input: "correct horse battery staple\n").status == 0)
        let enabled = try sql("SELECT hex(body) FROM staff_account WHERE name = 'drb'").output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(enabled.count > 64)
        #expect(try fixture.ctl(["user", "disable", "drb"]).status == 0)

        // The replica as it is now (an online backup); then the EHR changes a record and the
        // mirror takes the new version.
        let older = fixture.dir.file("older.sqlite")
        #expect(try sql(".backup '\(older)'").status == 0)
        let line = try #require(try TestData.lines("small", type: "Observation").first)
        var observation = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        let id = try #require(observation["id"] as? String)
        let before = try #require(try await rig.api.read("Observation", id).json?["meta"] as? [String: Any])
        observation["status"] = "amended"
        #expect(try await ServerClient(baseURL: rig.fhir.baseURL).put(observation) < 300)
        #expect(try fixture.ctl(["sync-now"]).status == 0)
        let mirrored = await eventually {
            let meta = try? await rig.api.read("Observation", id).json?["meta"] as? [String: Any]
            return meta?["versionId"] as? String != before["versionId"] as? String
        }
        try #require(mirrored, "the new version never reached the replica")

        // A downtime note queued while the EHR is out (paused: nothing is sent).
        #expect(try fixture.ctl(["pause"]).status == 0)
        let note: [String: Any] = [
            "resourceType": "Observation", "status": "final",
            "code": ["text": "Downtime note"], "valueString": "seen during the outage",
        ]
        #expect(try await rig.api.create(note).status == 201)
        #expect(fixture.stop() == 0)

        // A plain write is refused by SQLite itself.
        let plain = try sql("DELETE FROM outbox;")
        #expect(plain.status != 0 && plain.output.contains("no such function"), "\(plain.output)")

        let clean = fixture.dir.file("clean-replica")
        try FileManager.default.copyItem(atPath: fixture.stateDir, toPath: clean)
        let triggers = try sql("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rowset%';")
            .output.split(separator: "\n").map(String.init)
        let recreate = try sql("SELECT sql || ';' FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rowset%';")
            .output
        #expect(triggers.count == 18)
        let tampers: [(what: String, sql: String, atStart: Bool, problem: String)] = [
            (
                "deleted record", "DELETE FROM resource WHERE row = (SELECT MAX(row) FROM resource);", true,
                "resource: 1 row(s) fewer"
            ),
            (
                "older version put back",
                "ATTACH '\(older)' AS old; UPDATE resource SET version_id = o.version_id, last_updated = o.last_updated, "
                    + "content_hash = o.content_hash, size = o.size, body = o.body FROM old.resource AS o "
                    + "WHERE resource.row = o.row AND resource.version_id IS NOT o.version_id;", false,
                "resource: rows differ from the sealed set"
            ),
            (
                "revived account", "UPDATE staff_account SET body = x'\(enabled)' WHERE name = 'drb';", true,
                "staff_account: rows differ from the sealed set"
            ),
            ("deleted downtime note", "DELETE FROM outbox;", true, "outbox: 1 row(s) fewer"),
        ]
        for tamper in tampers {
            try FileManager.default.removeItem(atPath: fixture.stateDir)
            try FileManager.default.copyItem(atPath: clean, toPath: fixture.stateDir)
            let script =
                triggers.map { "DROP TRIGGER \($0);" }.joined(separator: "\n") + "\n" + tamper.sql + "\n" + recreate
            let done = try sql(script)
            #expect(done.status == 0, "\(tamper.what): \(done.output)")
            try fixture.start()
            #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
            let report = try #require(try fixture.status())
            if tamper.atStart {
                #expect(report.exitCode == 2, "\(tamper.what)")
                #expect(
                    report.integrity?.problems.contains { $0.hasPrefix(tamper.problem) } == true,
                    "\(tamper.what): \(String(describing: report.integrity))")
            }
            let verify = try fixture.ctl(["verify"])
            #expect(verify.status == 2, "\(tamper.what): \(verify.output)")
            #expect(
                verify.output.contains("Row sets:         BROKEN") && verify.output.contains(tamper.problem),
                "\(tamper.what): \(verify.output)")
            let after = try #require(try fixture.status())
            #expect(after.exitCode == 2 && after.integrity?.checked == "full", "\(tamper.what)")
            #expect(fixture.stop() == 0)
        }
        // Untouched, the same file verifies.
        try FileManager.default.removeItem(atPath: fixture.stateDir)
        try FileManager.default.copyItem(atPath: clean, toPath: fixture.stateDir)
        try fixture.start()
        #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
        let verify = try fixture.ctl(["verify"])
        #expect(verify.status == 0 && verify.output.contains("Row sets:         intact"), "\(verify.output)")
    }

    /// 8. The replica's key leaked, with a copy of the file. Rewrapping would leave the data key
    /// the thief can unwrap from the copy; `key rotate --reencrypt` makes a new one and
    /// re-seals every record with it while records stay readable. Afterwards the leaked key
    /// opens nothing: neither the replica, nor the replica with the old key slot put back.
    /// The operator points [key] at the new file; the new recovery key opens the replica too.
    @Test func aLeakedKeyIsRetiredByAReKey() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let fixture = rig.fixture
        let line = try #require(try TestData.lines("small", type: "Patient").first)
        let id = try #require((try JSONSerialization.jsonObject(with: line) as? [String: Any])?["id"] as? String)
        let record = try await rig.api.read("Patient", id)
        #expect(record.status == 200)

        // What the thief holds: the key and a copy of the file.
        let leakedKey = try KeySource.file(path: fixture.dir.file("replica.key")).load()
        let stolen = fixture.dir.file("stolen.sqlite")
        #expect(try fixture.sqlite(".backup '\(stolen)'").status == 0)

        let newKeyFile = fixture.dir.file("new.key")
        #expect(try fixture.syncctl(["key", "generate", newKeyFile]).status == 0)
        let rotated = try fixture.ctl(["key", "rotate", "--reencrypt", newKeyFile])
        #expect(rotated.status == 0, "\(rotated.output)")
        let recoveryText = try #require(
            rotated.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { RecoveryKey(text: $0) != nil }, "\(rotated.output)")
        // Records are served while they are re-sealed, and the re-key ends by itself.
        #expect(try await rig.api.read("Patient", id).body == record.body)
        let done = DaemonFixture.waitUntil(timeout: 120) {
            guard let status = try? fixture.status() else { return false }
            return status.reencryption == nil
        }
        #expect(done, "\(String(describing: try? fixture.status()?.reencryption))")
        #expect(try await rig.api.read("Patient", id).body == record.body)
        let trail = try rig.audit()
        #expect(trail.contains { $0.action == "key-rotate" && $0.detail == "new data key, rows re-sealed" })
        #expect(trail.contains { $0.action == "reencryption-done" })
        #expect(fixture.stop() == 0)

        // The leaked key opens nothing: not the replica...
        #expect(throws: ReplicaError.self) {
            try Replica.open(directory: fixture.stateDir, kek: leakedKey, keySource: "leaked key")
        }
        // ...nor the replica with the old key slot put back from the stolen copy: the slot
        // unwraps, but no record is sealed with the key inside it any more.
        let transplanted = fixture.dir.file("transplanted")
        try FileManager.default.copyItem(atPath: fixture.stateDir, toPath: transplanted)
        let slot = try run(
            "/usr/bin/sqlite3",
            [
                transplanted + "/" + Replica.fileName,
                "ATTACH '\(stolen)' AS old; UPDATE keyring SET wrapped_dek = (SELECT wrapped_dek FROM old.keyring);",
            ])
        #expect(slot.status == 0, "\(slot.output)")
        let thief = Result { () throws -> Replica in
            try Replica.open(directory: transplanted, kek: leakedKey, keySource: "leaked key")
        }
        switch thief {
        case .success(let opened):
            #expect(throws: ReplicaError.self) { try opened.records.resource(type: "Patient", id: id) }
            opened.close()
        case .failure(let error):
            #expect("\(error)".contains("integrity error"), "\(error)")
        }

        // The operator's side: [key] points at the new key; the printed recovery key works too.
        try FileManager.default.removeItem(atPath: fixture.dir.file("replica.key"))
        try FileManager.default.copyItem(atPath: newKeyFile, toPath: fixture.dir.file("replica.key"))
        let recovered = try #require(RecoveryKey(text: recoveryText))
        let viaRecovery = try Replica.open(
            directory: fixture.stateDir, kek: recovered.keyEncryptionKey, keySource: "recovery key")
        #expect(try viaRecovery.records.resource(type: "Patient", id: id) != nil)
        #expect(try viaRecovery.records.verify().ok)
        #expect(try viaRecovery.rowSetProblems(full: true) == [])
        viaRecovery.close()
        try fixture.start()
        #expect(await eventually { (try? await rig.api.read("Patient", id))?.body == record.body })
    }

    /// The viewer's sign-in, as a browser posts it (the form's token and its cookie).
    static func signIn(_ web: LocalAPIClient, _ name: String, _ password: String) async throws -> LocalAPIResponse {
        let page = try await web.request(.GET, "login")
        let text = String(decoding: page.body, as: UTF8.self)
        let start = try #require(text.range(of: "name=\"csrf\" value=\""))
        let csrf = String(text[start.upperBound...].prefix { $0 != "\"" })
        let cookie = try #require(page.headers["set-cookie"]?.split(separator: ";").first.map(String.init))
        let form = "name=\(name)&password=\(password.replacingOccurrences(of: " ", with: "+"))&csrf=\(csrf)"
        return try await web.request(
            .POST, "login", body: Data(form.utf8),
            headers: [("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")])
    }

    /// 5. A burst of parallel password guesses: admitted and counted before hashing, so only
    /// the free attempts are hashed and the rest wait; the failures are in the trail; an
    /// administrator lets the doctor back in at once.
    @Test func parallelPasswordGuessingIsThrottled() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let password = "correct horse battery staple"
        let (added, output) = try rig.fixture.ctl(["user", "add", "drb"], input: password + "\n")
        #expect(added == 0, "\(output)")
        let web = LocalAPIClient(baseURL: "http://127.0.0.1:\(try #require(rig.fixture.localAPI).port)", token: nil)
        let answers = try await withThrowingTaskGroup(of: Int.self) { group in
            for n in 0..<20 { group.addTask { try await Self.signIn(web, "drb", "guess number \(n)").status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0 == 401 || $0 == 429 }, "\(answers)")
        #expect(answers.filter { $0 == 401 }.count <= 5, "at most the free attempts were hashed: \(answers)")
        #expect(answers.contains(429), "the burst was slowed down: \(answers)")
        // Guessing on, one at a time, is slowed down with growing delays.
        var slowed: LocalAPIResponse?
        var refused = answers.filter { $0 == 401 }.count
        for n in 0..<10 {
            let answer = try await Self.signIn(web, "drb", "another guess \(n)")
            if answer.status == 401 { refused += 1 }
            if answer.status == 429, let wait = answer.headers["retry-after"].flatMap(Int.init), wait >= 2 {
                slowed = answer
                break
            }
        }
        #expect(slowed != nil, "never slowed down")
        // The right password from the same address now waits…
        #expect((try? await Self.signIn(web, "drb", password))?.status == 429)
        // …until an administrator clears it.
        let unlock = try rig.fixture.ctl(["user", "unlock", "drb"])
        #expect(unlock.status == 0, "\(unlock.output)")
        // Signed in: the answer redirects to the patient list (followed here without the cookie).
        _ = try? await Self.signIn(web, "drb", password)
        let trail = try rig.audit()
        #expect(trail.contains { $0.action == "sign-in" && $0.actor == "drb" }, "the doctor signed in")
        #expect(trail.filter { $0.action == "sign-in-failed" }.count == refused, "every hashed failure is in the trail")
        #expect(refused <= 5, "no more than the free attempts were ever hashed")
        #expect(trail.contains { $0.action == "user-unlock" && $0.target == "account drb" })
    }

    /// 6. A connection flood and slow senders: connections past the cap are closed at once,
    /// those that never send a request head are closed after the header timeout, and the
    /// API answers again afterwards.
    @Test func connectionFloodAndSlowSendersAreCut() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let port = try #require(rig.fixture.localAPI).port
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for _ in 0..<300 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(connected == 0)
            sockets.append(fd)
        }
        /// How many of the connections the daemon has closed (a read returns end of file).
        func closedCount() -> Int {
            sockets.filter { fd in
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 0) == 1 else { return false }
                var byte: UInt8 = 0
                return recv(fd, &byte, 1, Int32(MSG_PEEK)) <= 0
            }.count
        }
        #expect(DaemonFixture.waitUntil(timeout: 10) { closedCount() >= 300 - 256 }, "\(closedCount()) closed")
        #expect(DaemonFixture.waitUntil(timeout: 40) { closedCount() == 300 }, "slow senders kept: \(closedCount())")
        #expect(try await rig.api.request(.GET, "metadata").status == 200)
    }

    /// 9. A read token tries to write; a write token deletes many records in a burst: the
    /// first is refused, the burst beyond the threshold is held for an administrator.
    @Test func readTokensCannotWriteAndDeleteBurstsAreHeld() async throws {
        let reader = "reader-token-0123456789abcdefghij"
        let rig = try await Rig.start(moreTokens: "lab \(reader) read\n", localAPI: "delete_burst = 20")
        defer { rig.stop() }
        let readOnly = LocalAPIClient(baseURL: try #require(rig.fixture.localAPI).baseURL, token: reader)
        let ids = try TestData.lines("small", type: "Observation").prefix(25).map {
            try #require((try JSONSerialization.jsonObject(with: $0) as? [String: Any])?["id"] as? String)
        }
        #expect(try await readOnly.read("Observation", ids[0]).status == 200)
        let refused = try await readOnly.delete("Observation", ids[0])
        #expect(refused.status == 403)
        #expect(try rig.fixture.outbox(all: true)?.isEmpty == true, "nothing queued by the read token")
        // 25 deletions in a burst (the threshold set to 20).
        for id in ids { #expect(try await rig.api.delete("Observation", id).status == 204) }
        let entries = try #require(try rig.fixture.outbox(all: true))
        let held = entries.filter { $0.state == "parked" && ($0.reason ?? "").hasPrefix("held:") }
        #expect(held.count == 5, "\(entries.map { "\($0.state) \($0.reason ?? "")" })")
        #expect(try rig.audit().filter { $0.action == "outbox-hold" }.count == 5)
    }

    /// 10. DNS rebinding (a foreign `Host`), clear-text EHR URLs and foreign export files.
    @Test func foreignHostsAndClearTextEHRsAreRefused() async throws {
        let rig = try await Rig.start()
        defer { rig.stop() }
        let rebound = try await rig.api.request(.GET, "Patient?_count=1", headers: [("Host", "attacker.example")])
        #expect(rebound.status == 421)
        #expect(!String(decoding: rebound.body, as: UTF8.self).contains("Bundle"))
        #expect(try await rig.api.request(.GET, "Patient?_count=1").status == 200)
        let config = rig.fixture.dir.file("clear.toml")
        try Data(
            """
            [ehr]
            base_url = "http://ehr.example/fhir"
            [replica]
            state_dir = "/tmp/none"
            """.utf8
        ).write(to: URL(fileURLWithPath: config))
        let check = try rig.fixture.syncctl(["config", "check", config])
        #expect(check.status != 0 && check.output.contains("https://"), "\(check.output)")
    }
}

private func eventually(timeout: Double = 60, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return false
}
