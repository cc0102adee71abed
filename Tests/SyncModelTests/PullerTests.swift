import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The real puller, in-process, mirroring an in-memory FHIR server into a real replica
/// through the transport seam: the first copy by search, then an incremental cycle that
/// brings an edit and, through the sweep, a deletion; the capabilities are read once.
@Suite struct PullerTests {
    let dir: TemporaryDirectory
    let replica: Replica
    let server = InMemoryFHIRServer()

    init() throws {
        dir = try TemporaryDirectory()
        replica = try Replica.open(directory: dir.path, kek: KeyEncryptionKey.generate(), keySource: "test key")
    }

    func puller(massDeleteFloor: Int = 10) throws -> Puller {
        let config = try SyncConfiguration.parse(
            """
            [ehr]
            base_url = "http://ehr.test/fhir"
            allow_insecure_http = true
            [replica]
            state_dir = "\(dir.path)"
            [key]
            file = "\(dir.file("key"))"
            [sync]
            resource_types = ["Patient", "Observation"]
            sweep_interval = 0
            mass_delete_floor = \(massDeleteFloor)
            """, file: "test.toml")
        return Puller(
            transport: server, replica: replica, settings: Puller.Settings(config), logger: Logger(label: "t"))
    }

    func seed() {
        for i in 1...3 { server.put(["resourceType": "Patient", "id": .string("p\(i)"), "gender": "female"]) }
        for i in 1...2 {
            server.put([
                "resourceType": "Observation", "id": .string("o\(i)"), "status": "final",
                "subject": ["reference": "Patient/p1"],
            ])
        }
    }

    @Test func mirrorsThenFollowsEditsAndDeletions() async throws {
        seed()
        let puller = try puller()
        try await puller.runCycle()
        #expect(try replica.records.count() == 5)
        #expect(try replica.syncState.value(.initialComplete) == "1")
        #expect(try replica.syncState.value(.initialMode) == "search")
        #expect(puller.progress.phase == .idle)

        server.put(["resourceType": "Patient", "id": "p2", "gender": "male"])
        _ = try await server.send("DELETE", "Observation/o2", body: nil)
        try await puller.runCycle()
        #expect(try replica.records.count() == 4)
        #expect(try replica.records.storedVersion(type: "Patient", id: "p2")?.versionId == "2")
        let o2 = try replica.records.storedVersion(type: "Observation", id: "o2")
        #expect(o2 == nil || o2?.deleted == true)
        // The CapabilityStatement was read once for both cycles.
        #expect(server.requests.filter { $0 == "GET metadata" }.count == 1)
    }

    /// A cycle that would delete more than the guard allows holds the deletions instead.
    @Test func aMassDeletionIsHeldNotApplied() async throws {
        seed()
        let puller = try puller(massDeleteFloor: 1)
        try await puller.runCycle()
        for id in ["p2", "p3"] { _ = try await server.send("DELETE", "Patient/\(id)", body: nil) }
        try await puller.runCycle()
        #expect(try replica.records.count() == 5)
        #expect(try replica.held.summary().massDeletions == 2)
    }
}
