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

        static func start(sync: String = "", extra: String = "", author: String = "attacker") async throws -> Rig {
            let fhir = try await FHIRTestServer.start(dataset: "small")
            let fixture = try DaemonFixture(
                baseURL: fhir.baseURL,
                sync: "resource_types = [\"Patient\", \"Encounter\", \"Observation\"]\npoll_interval = 3600\n\(sync)",
                extra: extra, localAPIAuthor: author)
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
        let shell = try #require(
            ["/usr/bin/sqlite3", "/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let replicaFile = fixture.stateDir + "/" + Replica.fileName
        let emptied = try run(
            shell, [replicaFile, "DELETE FROM audit_log; DELETE FROM replica_meta WHERE name = 'audit_head';"])
        #expect(emptied.status == 0, "\(emptied.output)")
        try fixture.start()
        #expect(DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil })
        let verify = try fixture.ctl(["audit", "verify"])
        #expect(verify.status == 2 && verify.output.contains("head missing"), "\(verify.output)")
        let report = try #require(try fixture.status())
        #expect(report.exitCode == 2 && report.auditTrail?.intact == false, "\(String(describing: report.auditTrail))")
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
