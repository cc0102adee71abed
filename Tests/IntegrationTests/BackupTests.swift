import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// What cannot be fetched again survives the state disk and a damaged replica (#14): the
/// daemon copies it to `[backup] dir`; `syncctl backup restore DIR` brings it back on a new
/// machine; `syncctl replica rebuild` makes a new replica around it.
@Suite(.serialized) struct BackupTests {
    static let types = ["Patient", "Encounter", "Observation", "Condition"]
    static let markerSystem = "https://ehr-sync.org/test/backup"

    static func token(_ value: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(.init(charactersIn: "-._~"))
        return "\(markerSystem)|\(value)".addingPercentEncoding(withAllowedCharacters: allowed) ?? markerSystem
    }

    static func observation(_ mark: String, subject: String) -> [String: Any] {
        [
            "resourceType": "Observation", "status": "final", "code": ["text": "backup test"],
            "subject": ["reference": "Patient/\(subject)"], "identifier": [["system": markerSystem, "value": mark]],
        ]
    }

    /// Waits for the daemon to exit by itself (a restart it asked for) and starts it again, as
    /// systemd would.
    static func restartAsSystemdWould(_ fixture: DaemonFixture) throws {
        let exited = DaemonFixture.waitUntil(timeout: 30) { !fixture.isRunning }
        try #require(exited, "the daemon did not restart")
        #expect(fixture.stop() == Int32(75), "the exit status that asks systemd for a restart")
        try fixture.start()
    }

    @Test func aLostStateDiskIsRestoredFromTheBackupOnANewMachine() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let backupDir = try TemporaryDirectory("backup-disk")
        let sync = "resource_types = \(typeList(Self.types))\npoll_interval = 3600"
        let first = try DaemonFixture(
            baseURL: fhir.baseURL, sync: sync, extra: "[backup]\ndir = \"\(backupDir.path)\"\ninterval = 10",
            localAPIAuthor: "dr.backup")
        #expect(try first.runOnce() == 0)
        try first.start()
        _ = first.waitForStatus { $0.state == "online" }
        // The EHR goes quiet for the day: changes queue up; an account is made.
        #expect(try first.ctl(["pause"]).status == 0)
        #expect(try first.ctl(["user", "add", "drb"], input: "correct horse battery staple\n").status == 0)
        let api = try #require(first.localAPI).client()
        let patient = try #require(try await server.all("Patient").keys.sorted().first)
        for n in 0..<3 {
            #expect(try await api.create(Self.observation("bk-\(n)", subject: patient)).status == 201)
        }
        let backedUp = first.waitForStatus(timeout: 60) { $0.backup?.outboxEntries == 3 && $0.backup?.lastError == nil }
        #expect(backedUp != nil, "\(String(describing: try? first.status()?.backup))")
        let screen = try first.ctl(["status"])
        #expect(screen.output.contains("Backup") && screen.output.contains(backupDir.path), "\(screen.output)")
        let trailBefore = try first.ctl(["audit", "list", "--json", "--limit", "0"])
        let linesBefore = try JSONDecoder().decode([AuditRecord].self, from: Data(trailBefore.output.utf8)).count
        // The state disk dies.
        first.stop(signal: SIGKILL)
        try FileManager.default.removeItem(atPath: first.stateDir)

        // A new machine with the practice's key, running already (an empty copy), then restored.
        let second = try DaemonFixture(baseURL: fhir.baseURL, sync: sync, localAPIAuthor: "dr.backup")
        try FileManager.default.removeItem(atPath: second.dir.file("replica.key"))
        try FileManager.default.copyItem(atPath: first.dir.file("replica.key"), toPath: second.dir.file("replica.key"))
        try second.start()
        defer { second.stop() }
        _ = second.waitForStatus { $0.state == "online" }
        let restore = try second.ctl(["backup", "restore", backupDir.path])
        #expect(restore.status == 0, "\(restore.output)")
        try Self.restartAsSystemdWould(second)
        let replayed = second.waitForStatus(timeout: 120) {
            $0.state == "online" && $0.initialSyncComplete && $0.outboxPending + $0.outboxWaiting == 0
        }
        #expect(replayed != nil, "log:\n\(second.log.suffix(3000))")
        #expect(second.log.contains("replica restored from the backup"))
        for n in 0..<3 {
            let found = try await server.search("Observation?identifier=\(Self.token("bk-\(n)"))")
            #expect(found.count == 1, "bk-\(n) is on the EHR \(found.count) times")
        }
        // The trail and the account came back with it; the empty copy was kept aside.
        let audit = try second.ctl(["audit", "verify"])
        #expect(audit.status == 0, "\(audit.output)")
        let trail = try second.ctl(["audit", "list", "--json", "--limit", "0"])
        let lines = try JSONDecoder().decode([AuditRecord].self, from: Data(trail.output.utf8))
        #expect(lines.count >= linesBefore && lines.contains { $0.action == "user-add" })
        #expect(try second.ctl(["user", "list"]).output.contains("drb"))
        let aside = try FileManager.default.contentsOfDirectory(atPath: second.stateDir)
        #expect(aside.contains { $0.hasPrefix(Replica.fileName + ".replaced-") }, "\(aside)")
        #expect(try second.ctl(["verify"]).status == 0)
        second.stop()
        try await assertReplicaEqualsServer(second, server, types: Self.types)
    }

    @Test func aDamagedReplicaIsRebuiltAroundWhatCannotBeFetchedAgain() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(Self.types))\npoll_interval = 3600",
            localAPIAuthor: "dr.rebuild")
        #expect(try fixture.runOnce() == 0)
        try fixture.start()
        defer { fixture.stop() }
        _ = fixture.waitForStatus { $0.state == "online" }
        #expect(try fixture.ctl(["pause"]).status == 0)
        let api = try #require(fixture.localAPI).client()
        let patient = try #require(try await server.all("Patient").keys.sorted().first)
        for n in 0..<2 {
            #expect(try await api.create(Self.observation("rb-\(n)", subject: patient)).status == 201)
        }
        #expect(fixture.stop() == 0)

        // Damage: bytes flipped inside stored records (the file still opens).
        let damage = try fixture.sqlite(
            "DROP TRIGGER rowset_resource_update; "
                + "UPDATE resource SET body = zeroblob(length(body)) WHERE type = 'Observation' AND row % 50 = 0;")
        #expect(damage.status == 0, "\(damage.output)")
        try fixture.start()
        _ = fixture.waitForStatus(timeout: 60) { _ in true }
        let verify = try fixture.ctl(["verify"])
        #expect(verify.status == 2 && verify.output.contains("Records failing"), "\(verify.output)")

        let rebuild = try fixture.ctl(["replica", "rebuild"])
        #expect(rebuild.status == 0, "\(rebuild.output)")
        try Self.restartAsSystemdWould(fixture)
        _ = fixture.waitForStatus(timeout: 120) { $0.state == "online" && $0.initialSyncComplete }
        #expect(fixture.log.contains("replica rebuilt: 2 local change(s)"), "\(fixture.log.suffix(2000))")
        let healthy = try fixture.ctl(["verify"])
        #expect(healthy.status == 0, "\(healthy.output)")
        let aside = try FileManager.default.contentsOfDirectory(atPath: fixture.stateDir)
        #expect(aside.contains { $0.hasPrefix(Replica.fileName + ".damaged-") }, "\(aside)")
        // The carried changes go to the EHR (a restart is not paused), once each.
        _ = fixture.waitForStatus(timeout: 120) { $0.outboxPending + $0.outboxWaiting == 0 }
        for n in 0..<2 {
            let found = try await server.search("Observation?identifier=\(Self.token("rb-\(n)"))")
            #expect(found.count == 1, "rb-\(n) is on the EHR \(found.count) times")
        }
        fixture.stop()
        try await assertReplicaEqualsServer(fixture, server, types: Self.types)
    }
}
