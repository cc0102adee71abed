import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The real reconciler, in-process, replaying a real replica's outbox to an in-memory FHIR
/// server through the transport seam: idempotence when answers are lost, the decision table
/// carried out over the wire, refusals parked, references between local creates resolved.
@Suite struct ReconcilerTests {
    let dir: TemporaryDirectory
    let replica: Replica
    let server: InMemoryFHIRServer

    init() throws {
        dir = try TemporaryDirectory()
        replica = try Replica.open(directory: dir.path, kek: KeyEncryptionKey.generate(), keySource: "test key")
        server = InMemoryFHIRServer()
    }

    func reconciler(_ server: InMemoryFHIRServer? = nil, policy: ConflictPolicy = .merge) -> Reconciler {
        var settings = Reconciler.Settings()
        settings.defaultPolicy = policy
        settings.provenance = false
        return Reconciler(
            transport: server ?? self.server, replica: replica, settings: settings, logger: Logger(label: "test"))
    }

    func replay(_ reconciler: Reconciler, conditional: Bool = true) async throws -> Reconciler.PassOutcome {
        try await reconciler.replay(conditionalCreate: { _ in conditional })
    }

    static func json(_ value: JSONValue) -> Data { value.data() }

    /// A Patient mirrored at version 1 on both sides.
    func mirrored(_ patient: JSONObject) throws {
        server.put(patient)
        var withMeta = patient
        withMeta["meta"] = ["versionId": "1"]
        _ = try replica.records.apply([JSONValue.object(withMeta).data()])
    }

    static let patient: JSONObject = [
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01",
    ]

    // MARK: Creates

    @Test func aLocalCreateIsPostedOnceAndMapped() async throws {
        let reconciler = reconciler()
        let queued = try reconciler.enqueue(
            LocalChange(
                operation: .create, resourceType: "Patient", id: nil,
                resource: Self.json(["resourceType": "Patient", "gender": "male"]), author: "amartin"))
        let outcome = try await replay(reconciler)
        #expect(outcome.done == 1)
        #expect(server.all("Patient").count == 1)
        let serverID = try #require(try replica.outbox.serverID(ofLocal: "Patient", queued.localID))
        #expect(server.resource("Patient", serverID)?.resource["gender"] == "male")
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .done)
        // Nothing left: a second pass sends nothing.
        let before = server.requests.count
        #expect(try await replay(reconciler).done == 0)
        #expect(server.requests.count == before)
    }

    /// The server wrote the create but the answer never came back: the next pass must find
    /// it, not write a second Patient. Both with a server that honours `If-None-Exist` and
    /// with one that ignores it (the reconciler then searches by the client identifier first).
    @Test(arguments: [true, false])
    func aCreateWhoseAnswerWasLostIsNotDuplicated(honoursIfNoneExist: Bool) async throws {
        let server = InMemoryFHIRServer(
            declaresConditionalCreate: honoursIfNoneExist, honoursIfNoneExist: honoursIfNoneExist)
        let reconciler = reconciler(server)
        let queued = try reconciler.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil,
                resource: Self.json(["resourceType": "Observation", "status": "final"]), author: "amartin"))
        server.inject(.loseAnswer, method: "POST", pathPrefix: "Observation")
        await #expect(throws: RemoteError.self) { try await replay(reconciler, conditional: honoursIfNoneExist) }
        #expect(server.all("Observation").count == 1)
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .pending)
        // Service returns: the pass closes the entry against the resource already there.
        #expect(try await replay(reconciler, conditional: honoursIfNoneExist).done == 1)
        #expect(server.all("Observation").count == 1)
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .done)
        #expect(
            try replica.outbox.serverID(ofLocal: "Observation", queued.localID)
                == server.all("Observation")[0]["id"]?.stringValue)
    }

    /// A local Patient and an Observation that references it by its local id.
    func newPatientWithObservation(_ reconciler: Reconciler) throws -> (QueuedChange, QueuedChange) {
        let patient = try reconciler.enqueue(
            LocalChange(
                operation: .create, resourceType: "Patient", id: nil,
                resource: Self.json(["resourceType": "Patient", "gender": "other"]), author: "amartin"))
        let observation = try reconciler.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil,
                resource: Self.json([
                    "resourceType": "Observation", "status": "final",
                    "subject": ["reference": .string("Patient/\(patient.localID)")],
                ]), author: "amartin"))
        return (patient, observation)
    }

    @Test func aReferenceToALocalCreateIsReplayedAfterItWithTheServerID() async throws {
        let reconciler = reconciler()
        let (patient, observation) = try newPatientWithObservation(reconciler)
        #expect(try await replay(reconciler).done == 2)
        let serverPatient = try #require(try replica.outbox.serverID(ofLocal: "Patient", patient.localID))
        let stored = try #require(server.all("Observation").first)
        #expect(stored["subject"]?["reference"] == .string("Patient/\(serverPatient)"))
        #expect(try replica.outbox.entry(seq: observation.seq)?.state == .done)
    }

    // MARK: Updates and the decision table

    func edit(_ change: (inout JSONObject) -> Void, on reconciler: Reconciler) throws -> QueuedChange {
        var object = Self.patient
        change(&object)
        return try reconciler.enqueue(
            LocalChange(
                operation: .update, resourceType: "Patient", id: "p1", resource: Self.json(.object(object)),
                author: "amartin"))
    }

    @Test func anUnchangedRemoteTakesTheEditWithIfMatch() async throws {
        try mirrored(Self.patient)
        let reconciler = reconciler()
        _ = try edit({ $0["gender"] = "male" }, on: reconciler)
        #expect(try await replay(reconciler).done == 1)
        #expect(server.resource("Patient", "p1")?.version == 2)
        #expect(server.resource("Patient", "p1")?.resource["gender"] == "male")
        #expect(server.requests.contains("PUT Patient/p1"))
    }

    @Test func aRemoteChangedElsewhereIsMergedThreeWay() async throws {
        try mirrored(Self.patient)
        var remote = Self.patient
        remote["birthDate"] = "1971-01-01"
        server.put(remote)
        let reconciler = reconciler()
        _ = try edit({ $0["gender"] = "male" }, on: reconciler)
        #expect(try await replay(reconciler).done == 1)
        let stored = try #require(server.resource("Patient", "p1"))
        #expect(stored.version == 3)
        #expect(stored.resource["gender"] == "male")
        #expect(stored.resource["birthDate"] == "1971-01-01")
    }

    @Test func overlappingChangesGoToReviewAndNothingIsWritten() async throws {
        try mirrored(Self.patient)
        var remote = Self.patient
        remote["gender"] = "other"
        server.put(remote)
        let reconciler = reconciler()
        let queued = try edit({ $0["gender"] = "male" }, on: reconciler)
        let outcome = try await replay(reconciler)
        #expect(outcome.conflicts == 1)
        #expect(server.resource("Patient", "p1")?.version == 2)
        let entry = try #require(try replica.outbox.entry(seq: queued.seq))
        #expect(entry.state == .conflict)
        #expect(entry.payload.conflicts?.map(\.path) == ["gender"])
        // Resolved by keeping the local version: written over the remote on the next pass.
        try replica.outbox.resolveConflict(seq: queued.seq, choice: .local, actor: "dr")
        #expect(try await replay(reconciler).done == 1)
        #expect(server.resource("Patient", "p1")?.resource["gender"] == "male")
    }

    @Test func remoteWinsDiscardsTheLocalChange() async throws {
        try mirrored(Self.patient)
        var remote = Self.patient
        remote["birthDate"] = "1971-01-01"
        server.put(remote)
        let reconciler = reconciler(policy: .remoteWins)
        let queued = try edit({ $0["gender"] = "male" }, on: reconciler)
        #expect(try await replay(reconciler).discarded == 1)
        #expect(server.resource("Patient", "p1")?.resource["gender"] == "female")
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .discarded)
    }

    /// An update whose answer was lost: the repeat gets 412, the remote equals the local
    /// version, and the entry closes without a second write.
    @Test func anUpdateWhoseAnswerWasLostClosesWithoutWritingAgain() async throws {
        try mirrored(Self.patient)
        let reconciler = reconciler()
        let queued = try edit({ $0["gender"] = "male" }, on: reconciler)
        server.inject(.loseAnswer, method: "PUT", pathPrefix: "Patient/p1")
        await #expect(throws: RemoteError.self) { try await replay(reconciler) }
        #expect(server.resource("Patient", "p1")?.version == 2)
        #expect(try await replay(reconciler).done == 1)
        #expect(server.resource("Patient", "p1")?.version == 2)
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .done)
    }

    @Test func aDeleteOfWhatIsAlreadyGoneIsDone() async throws {
        try mirrored(Self.patient)
        let reconciler = reconciler()
        let queued = try reconciler.enqueue(
            LocalChange(operation: .delete, resourceType: "Patient", id: "p1", resource: nil, author: "amartin"))
        _ = try await server.send("DELETE", "Patient/p1", body: nil)
        #expect(try await replay(reconciler).done == 1)
        #expect(!server.requests.contains { $0.hasPrefix("DELETE") && $0 != "DELETE Patient/p1" })
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .done)
    }

    // MARK: Refusals and outages

    @Test func aRefusedChangeIsParkedAndItsDependantsWait() async throws {
        let reconciler = reconciler()
        let (patient, observation) = try newPatientWithObservation(reconciler)
        server.inject(.refuse(422), method: "POST", pathPrefix: "Patient")
        let outcome = try await replay(reconciler)
        #expect(outcome.parked == 1 && outcome.done == 0 && outcome.waiting == 1)
        let parked = try #require(try replica.outbox.entry(seq: patient.seq))
        #expect(parked.state == .parked)
        #expect(parked.payload.reason?.hasPrefix("HTTP 422") == true)
        #expect(try replica.outbox.entry(seq: observation.seq)?.state == .pending)
        #expect(server.all("Observation").isEmpty)
        // Retried once fixed: both go.
        try replica.outbox.retryParked(seq: patient.seq, actor: "dr")
        #expect(try await replay(reconciler).done == 2)
    }

    @Test func anOutageStopsThePassAndLosesNothing() async throws {
        let reconciler = reconciler()
        let queued = try reconciler.enqueue(
            LocalChange(
                operation: .create, resourceType: "Patient", id: nil,
                resource: Self.json(["resourceType": "Patient"]), author: "amartin"))
        server.inject(.unavailable, method: "POST", pathPrefix: "Patient")
        await #expect(throws: RemoteError.self) { try await replay(reconciler) }
        #expect(server.all("Patient").isEmpty)
        #expect(try replica.outbox.entry(seq: queued.seq)?.state == .pending)
        #expect(try await replay(reconciler).done == 1)
        #expect(server.all("Patient").count == 1)
    }
}
