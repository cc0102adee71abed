import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// A full disk (#14): the state directory on a small file system made by the test. The copy
/// stops with a critical status that says so; a local write that does not fit is refused
/// with 507 and an OperationOutcome (nothing acknowledged and then lost); no read is served
/// without its audit line; when space returns everything resumes without a restart and the
/// replica verifies.
@Suite(.serialized) struct FullDiskTests {
    static let types = ["Patient", "Encounter", "Observation", "Condition"]

    static func mount(_ arguments: [String]) throws {
        let result = try run("/bin/mount", arguments)
        try #require(result.status == 0, "mount \(arguments): \(result.output)")
    }

    /// Whether this machine lets the tests mount a tmpfs (root, and a kernel that allows it here).
    static let canMount: Bool = {
        guard getuid() == 0, let probe = try? TemporaryDirectory("mount-probe") else { return false }
        guard (try? run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path]))?.status == 0 else {
            return false
        }
        _ = try? run("/bin/umount", [probe.path])
        return true
    }()

    @Test(.enabled(if: canMount, "mounting a small file system needs root and a kernel that allows it"))
    func aFullDiskStopsTheCopyRefusesWritesAndEverythingResumes() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(Self.types))\npoll_interval = 2",
            localAPIAuthor: "dr.disk")
        try FileManager.default.createDirectory(atPath: fixture.stateDir, withIntermediateDirectories: true)
        try Self.mount(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", fixture.stateDir])
        defer { _ = try? run("/bin/umount", ["-l", fixture.stateDir]) }
        let api = try #require(fixture.localAPI).client()
        try fixture.start()
        defer { fixture.stop() }

        // The copy runs out of room: critical, and says why.
        var report: StatusReport?
        let full = DaemonFixture.waitUntil(timeout: 120, interval: 0.1) {
            report = (try? fixture.status()) ?? nil
            return report?.storage?.full == true
        }
        try #require(full, "never full: \(String(describing: report))\nlog:\n\(fixture.log.suffix(2000))")
        #expect(report?.exitCode == 2)
        #expect(report?.initialSyncComplete == false)
        let screen = try fixture.ctl(["status"])
        #expect(screen.status == 2 && screen.output.contains("FULL"), "\(screen.output)")
        #expect(fixture.log.contains("the disk holding the replica is full"))

        // What is left is taken by another file: a write that needs room is refused, with a
        // reason, and is not queued.
        let filler = fixture.stateDir + "/filler"
        _ = try run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        let queuedBefore = try #require(try fixture.status()).outboxPending
        let note = String(repeating: "Note written while the disk is full. ", count: 30_000)
        let large: [String: Any] = [
            "resourceType": "Observation", "status": "final", "code": ["text": "disk full"],
            "note": [["text": note]],
        ]
        let refused = try await api.create(large)
        #expect(refused.status == 507, "\(refused.status) \(refused.diagnostics)")
        #expect(refused.json?["resourceType"] as? String == "OperationOutcome")
        #expect(refused.diagnostics.contains("disk is full"), "\(refused.diagnostics)")
        #expect(try #require(try fixture.status()).outboxPending == queuedBefore)

        // Reads: served only with their audit line (a small line may still fit; if it does not,
        // the read is refused, never served unrecorded).
        var served: [String] = []
        let replicaPatients = try await ServerClient(baseURL: fhir.baseURL).all("Patient").keys.sorted()
        for id in replicaPatients.prefix(5) {
            let read = try await api.read("Patient", id)
            #expect([200, 404, 507].contains(read.status), "read: \(read.status) \(read.diagnostics)")
            if read.status == 200 { served.append(id) }
        }

        // Space returns: everything goes on, no restart.
        try FileManager.default.removeItem(atPath: filler)
        try Self.mount(["-o", "remount,size=256m", fixture.stateDir])
        let resumed = DaemonFixture.waitUntil(timeout: 180, interval: 0.2) {
            report = (try? fixture.status()) ?? nil
            return report?.storage?.full == false && report?.initialSyncComplete == true && report?.state == "online"
        }
        #expect(resumed, "did not resume: \(String(describing: report))\nlog:\n\(fixture.log.suffix(2000))")
        #expect(report?.exitCode == 0)
        let accepted = try await api.create(large)
        #expect(accepted.status == 201, "\(accepted.status) \(accepted.diagnostics)")
        let verify = try fixture.ctl(["verify"])
        #expect(verify.status == 0, "\(verify.output)")
        let trail = try fixture.ctl(["audit", "list", "--json", "--limit", "0"])
        let records = try JSONDecoder().decode([AuditRecord].self, from: Data(trail.output.utf8))
        for id in served {
            #expect(records.contains { $0.action == "read" && $0.patient == id }, "a read served without its line")
        }
        fixture.stop()
        try await assertReplicaEqualsServer(fixture, ServerClient(baseURL: fhir.baseURL), types: Self.types)
    }
}
