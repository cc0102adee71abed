import Foundation
import GRDB
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The outbox as stored in a real replica: queuing, squashing, chaining, the local view,
/// replay results and operator decisions.
@Suite struct OutboxStorageTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()
    let replica: Replica

    static let patient = Data(
        #"{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-01-03T10:00:00Z"},"name":[{"family":"Martin"}]}"#
            .utf8)
    static let condition = Data(
        #"{"resourceType":"Condition","id":"c1","meta":{"versionId":"2","lastUpdated":"2026-01-02T10:00:00Z"},"subject":{"reference":"Patient/p1"},"note":[{"text":"v2"}]}"#
            .utf8)
    static let observation = Data(
        #"{"resourceType":"Observation","id":"o1","meta":{"versionId":"1","lastUpdated":"2026-01-01T10:00:00Z"},"status":"final","subject":{"reference":"Patient/p1"}}"#
            .utf8)

    init() throws {
        dir = try TemporaryDirectory()
        replica = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        let outcome = try replica.records.apply([Self.patient, Self.condition, Self.observation])
        #expect(outcome.inserted == 3)
    }

    // MARK: Helpers

    @discardableResult
    func enqueue(
        _ operation: OutboxOperation, _ type: String, _ id: String? = nil, _ json: String? = nil,
        author: String = "alice", isInFlight: (Int64) -> Bool = { _ in false }
    ) throws(OutboxError) -> QueuedChange {
        try replica.outbox.enqueue(
            LocalChange(
                operation: operation, resourceType: type, id: id, resource: json.map { Data($0.utf8) },
                author: author),
            isInFlight: isInFlight)
    }

    func entry(_ seq: Int64) throws -> OutboxEntry {
        try #require(try replica.outbox.entry(seq: seq))
    }

    func value(_ data: Data?) throws -> JSONValue {
        try JSONValue(data: try #require(data))
    }

    /// The pending tag of a local view, as `code`.
    func tagCode(_ data: Data?) throws -> String? {
        let tags = try value(data)["meta"]?["tag"]?.arrayValue ?? []
        let ours = tags.filter { $0["system"] == .string(PendingTag.system) }
        #expect(ours.count <= 1)
        return ours.first?["code"]?.stringValue
    }

    func expectOutboxError(
        _ expected: OutboxError, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("expected \(expected), nothing thrown", sourceLocation: sourceLocation)
        } catch {
            #expect(error as? OutboxError == expected, sourceLocation: sourceLocation)
        }
    }

    /// The server's answer to a replayed create of `localID` as `serverID`.
    func serverVersion(of entry: OutboxEntry, serverID: String, version: String) throws -> PreparedVersion {
        guard case .object(var object) = try value(entry.payload.resource) else {
            throw OutboxError.invalid("not an object")
        }
        object["id"] = .string(serverID)
        object["meta"] = ["versionId": .string(version), "lastUpdated": "2026-02-01T00:00:00Z"]
        return try replica.records.prepare(JSONValue.object(object).data())
    }

    // MARK: Queuing

    @Test func aCreateGetsALocalIDAndComesBackTagged() throws {
        let queued = try enqueue(
            .create, "Patient", nil,
            #"{"resourceType":"Patient","id":"client-chosen","meta":{"versionId":"9","lastUpdated":"2020-01-01T00:00:00Z"},"name":[{"family":"Nouveau"}]}"#
        )
        #expect(UUID(uuidString: queued.localID) != nil)
        #expect(queued.localID == queued.localID.lowercased())
        let view = try value(queued.resource)
        #expect(view["id"] == .string(queued.localID))
        #expect(view["name"]?.arrayValue?.first?["family"] == "Nouveau")
        #expect(view["meta"]?["versionId"] == nil)
        #expect(view["meta"]?["lastUpdated"] == nil)
        #expect(try tagCode(queued.resource) == "pending")

        let entry = try entry(queued.seq)
        #expect(entry.operation == .create)
        #expect(entry.state == .pending)
        #expect(entry.resourceType == "Patient")
        #expect(entry.localID == queued.localID)
        #expect(entry.payload.serverID == nil)
        #expect(entry.payload.base == nil)
        #expect(entry.payload.baseVersion == nil)
        #expect(entry.payload.after == nil)
        #expect(entry.payload.references == [])
        #expect(entry.payload.authors.names == ["alice"])
        #expect(entry.payload.clientIdentifier.hasPrefix("urn:uuid:"))
        #expect(UUID(uuidString: String(entry.payload.clientIdentifier.dropFirst(9))) != nil)
        #expect(FHIRInstant.parse(entry.payload.localTime) != nil)
        // What is queued has no tag: the tag is only in the local view.
        #expect(try tagCode(entry.payload.resource) == nil)

        guard
            case .pending(let body, let seq, let state) = try replica.outbox.localView(
                type: "Patient", id: queued.localID)
        else {
            Issue.record("expected a pending local view")
            return
        }
        #expect(body == queued.resource)
        #expect(seq == queued.seq)
        #expect(state == .pending)
        // Not in the mirror: only in the outbox.
        #expect(try replica.records.resource(type: "Patient", id: queued.localID) == nil)
        #expect(try replica.outbox.counts() == [.pending: 1])
    }

    @Test func twoCreatesGetDifferentIDsAndIncreasingNumbers() throws {
        let body = #"{"resourceType":"Patient","name":[{"family":"Twin"}]}"#
        let a = try enqueue(.create, "Patient", nil, body)
        let b = try enqueue(.create, "Patient", nil, body)
        #expect(a.localID != b.localID)
        #expect(b.seq > a.seq)
        #expect(try entry(a.seq).payload.clientIdentifier != entry(b.seq).payload.clientIdentifier)
    }

    @Test func anUpdateOfAMirroredResourceRecordsItsBase() throws {
        let queued = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"local"}]}"#)
        #expect(queued.localID == "c1")
        let entry = try entry(queued.seq)
        #expect(entry.operation == .update)
        #expect(entry.payload.localID == "c1")
        #expect(entry.payload.serverID == "c1")
        #expect(entry.payload.base == Self.condition)
        #expect(entry.payload.baseVersion == "2")
        #expect(entry.payload.after == nil)
        guard case .pending(let body, _, .pending) = try replica.outbox.localView(type: "Condition", id: "c1") else {
            Issue.record("expected a pending local view")
            return
        }
        #expect(try value(body)["note"] == [["text": "local"]])
        #expect(try tagCode(body) == "pending")
        // The mirror keeps the server's version.
        #expect(try replica.records.resource(type: "Condition", id: "c1")?.json == Self.condition)
    }

    @Test func anUpdateWithoutIDInTheBodyTakesTheURLs() throws {
        let queued = try enqueue(.update, "Observation", "o1", #"{"resourceType":"Observation","status":"amended"}"#)
        #expect(try value(entry(queued.seq).payload.resource)["id"] == "o1")
    }

    @Test func updatesSquashIntoOneEntryKeepingTheFirstBase() throws {
        let first = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"one"}]}"#)
        let second = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"two"}]}"#,
            author: "bob")
        #expect(second.seq == first.seq)
        let entries = try replica.outbox.entries()
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry.operation == .update)
        #expect(entry.payload.base == Self.condition)
        #expect(entry.payload.baseVersion == "2")
        #expect(try value(entry.payload.resource)["note"] == [["text": "two"]])
        #expect(entry.payload.authors.names == ["alice", "bob"])  // both authors of a squashed change are kept
    }

    @Test func aCreateThenAnUpdateStaysOneCreate() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"A"}]}"#)
        let clientIdentifier = try entry(created.seq).payload.clientIdentifier
        let updated = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","name":[{"family":"B"}]}"#)
        #expect(updated.seq == created.seq)
        #expect(updated.localID == created.localID)
        #expect(try tagCode(updated.resource) == "pending")
        let entry = try entry(created.seq)
        #expect(entry.operation == .create)
        #expect(entry.payload.clientIdentifier == clientIdentifier)
        #expect(try value(entry.payload.resource)["name"] == [["family": "B"]])
        #expect(try value(entry.payload.resource)["id"] == .string(created.localID))
        #expect(try replica.outbox.entries().count == 1)
    }

    @Test func aCreateThenADeleteCancelOut() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"Gone"}]}"#)
        let deleted = try enqueue(.delete, "Patient", created.localID)
        #expect(deleted.seq == created.seq)
        #expect(deleted.resource == nil)
        let entry = try entry(created.seq)
        #expect(entry.state == .discarded)
        #expect(entry.payload.reason != nil)
        #expect(try replica.outbox.entries(states: [.pending, .parked, .conflict]).isEmpty)
        guard case .notFound = try replica.outbox.localView(type: "Patient", id: created.localID) else {
            Issue.record("expected notFound")
            return
        }
        #expect(try replica.outbox.counts() == [.discarded: 1])
        // Nothing left to change.
        expectOutboxError(.notFound(resourceType: "Patient")) {
            try enqueue(.update, "Patient", created.localID, #"{"resourceType":"Patient"}"#)
        }
        expectOutboxError(.notFound(resourceType: "Patient")) { try enqueue(.delete, "Patient", created.localID) }
    }

    @Test func anUpdateThenADeleteBecomesOneDelete() throws {
        let updated = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"x"}]}"#)
        let deleted = try enqueue(.delete, "Condition", "c1")
        #expect(deleted.seq == updated.seq)
        #expect(deleted.resource == nil)
        let entries = try replica.outbox.entries()
        #expect(entries.count == 1)
        #expect(entries.first?.operation == .delete)
        #expect(entries.first?.payload.resource == nil)
        #expect(entries.first?.payload.base == Self.condition)
        #expect(entries.first?.payload.baseVersion == "2")
        guard case .deletedLocally(let seq) = try replica.outbox.localView(type: "Condition", id: "c1") else {
            Issue.record("expected deletedLocally")
            return
        }
        #expect(seq == updated.seq)
        // Deleted locally: nothing more can be done to it.
        expectOutboxError(.gone(resourceType: "Condition")) {
            try enqueue(.update, "Condition", "c1", #"{"resourceType":"Condition"}"#)
        }
        expectOutboxError(.gone(resourceType: "Condition")) { try enqueue(.delete, "Condition", "c1") }
        #expect(try replica.outbox.entries().count == 1)
    }

    @Test func aDeleteOfAMirroredResourceKeepsItsBase() throws {
        let deleted = try enqueue(.delete, "Observation", "o1")
        let entry = try entry(deleted.seq)
        #expect(entry.operation == .delete)
        #expect(entry.payload.serverID == "o1")
        #expect(entry.payload.base == Self.observation)
        #expect(entry.payload.baseVersion == "1")
        guard case .deletedLocally = try replica.outbox.localView(type: "Observation", id: "o1") else {
            Issue.record("expected deletedLocally")
            return
        }
    }

    @Test func anEditOfAnEntryBeingSentIsChainedAfterIt() throws {
        let first = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"one"}]}"#)
        let firstEntry = try entry(first.seq)
        var asked: [Int64] = []
        let second = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"two"}]}"#,
            isInFlight: {
                asked.append($0)
                return $0 == first.seq
            })
        #expect(asked == [first.seq])
        #expect(second.seq != first.seq)
        let chained = try entry(second.seq)
        #expect(chained.payload.after == first.seq)
        #expect(chained.payload.base == firstEntry.payload.resource)
        #expect(chained.payload.baseVersion == nil)
        #expect(chained.payload.serverID == "c1")
        #expect(chained.payload.clientIdentifier != firstEntry.payload.clientIdentifier)
        // The first entry is untouched.
        #expect(try entry(first.seq) == firstEntry)
        // The local view shows the latest change.
        guard case .pending(let body, let seq, _) = try replica.outbox.localView(type: "Condition", id: "c1") else {
            Issue.record("expected a pending local view")
            return
        }
        #expect(seq == second.seq)
        #expect(try value(body)["note"] == [["text": "two"]])
        // A further edit squashes into the chained entry, not the one in flight.
        let third = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"three"}]}"#,
            isInFlight: { $0 == first.seq })
        #expect(third.seq == second.seq)
        #expect(try replica.outbox.entries().count == 2)
        #expect(try entry(second.seq).payload.after == first.seq)
    }

    @Test func anEditOfAnEntryInConflictIsChained() throws {
        let state = OutboxState.conflict
        let first = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"one"}]}"#)
        let firstEntry = try entry(first.seq)
        try replica.outbox.update(firstEntry, state: state, payload: firstEntry.payload)
        guard case .pending(let body, _, let viewState) = try replica.outbox.localView(type: "Condition", id: "c1")
        else {
            Issue.record("expected a pending local view")
            return
        }
        #expect(viewState == state)
        #expect(try tagCode(body) == state.rawValue)
        let second = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"two"}]}"#)
        #expect(second.seq != first.seq)
        #expect(try entry(second.seq).payload.after == first.seq)
        #expect(try entry(first.seq).state == state)
    }

    @Test func aCorrectionOfAParkedCreateIsKeptAndShown() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","gender":"mal"}"#)
        let rejected = try entry(created.seq)
        try replica.outbox.update(rejected, state: .parked, payload: rejected.payload)
        guard
            case .pending(let parkedView, _, .parked) = try replica.outbox.localView(
                type: "Patient", id: created.localID)
        else {
            Issue.record("expected the parked version")
            return
        }
        #expect(try tagCode(parkedView) == "parked")
        let corrected = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","gender":"male"}"#)
        guard case .pending(let body, let seq, _) = try replica.outbox.localView(type: "Patient", id: created.localID)
        else {
            Issue.record("expected the corrected version")
            return
        }
        #expect(seq == corrected.seq)
        #expect(try value(body)["gender"] == "male")
        let open = try replica.outbox.entries(states: [.pending, .parked, .conflict])
        #expect(try open.contains { try value($0.payload.resource)["gender"] == "male" })
    }

    @Test func aDeleteOfAnEntryBeingSentIsChainedToo() throws {
        let first = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"one"}]}"#)
        let deleted = try enqueue(.delete, "Condition", "c1", isInFlight: { _ in true })
        #expect(deleted.seq != first.seq)
        let chained = try entry(deleted.seq)
        #expect(chained.operation == .delete)
        #expect(chained.payload.after == first.seq)
        #expect(try entry(first.seq).operation == .update)
    }

    // MARK: Refusals

    @Test func unknownTargetsAreNotFound() {
        expectOutboxError(.notFound(resourceType: "Condition")) {
            try enqueue(.update, "Condition", "nope", #"{"resourceType":"Condition"}"#)
        }
        expectOutboxError(.notFound(resourceType: "Condition")) { try enqueue(.delete, "Condition", "nope") }
        // Same id, other type.
        expectOutboxError(.notFound(resourceType: "Observation")) { try enqueue(.delete, "Observation", "c1") }
    }

    @Test func aTombstonedTargetIsGone() throws {
        try replica.records.applyDeletion(type: "Observation", id: "o1", versionId: "2")
        expectOutboxError(.gone(resourceType: "Observation")) {
            try enqueue(.update, "Observation", "o1", #"{"resourceType":"Observation"}"#)
        }
        expectOutboxError(.gone(resourceType: "Observation")) { try enqueue(.delete, "Observation", "o1") }
    }

    @Test func aBodyIDOtherThanTheURLsIsRefused() throws {
        expectOutboxError(.invalid("the resource's id does not match the URL's id")) {
            try enqueue(.update, "Condition", "c1", #"{"resourceType":"Condition","id":"c2"}"#)
        }
        expectOutboxError(.invalid("the resource's id does not match the URL's id")) {
            try enqueue(.update, "Condition", "c1", #"{"resourceType":"Condition","id":1}"#)
        }
        #expect(try replica.outbox.entries().isEmpty)
    }

    @Test func malformedChangesAreRefused() {
        expectOutboxError(.invalid("the URL has no valid resource id")) {
            try enqueue(.update, "Condition", nil, #"{"resourceType":"Condition"}"#)
        }
        expectOutboxError(.invalid("the URL has no valid resource id")) { try enqueue(.delete, "Condition", "c 1") }
        expectOutboxError(.invalid("a create needs a resource")) { try enqueue(.create, "Patient") }
        expectOutboxError(.invalid("patient is not a FHIR resource type")) {
            try enqueue(.create, "patient", nil, #"{"resourceType":"patient"}"#)
        }
        expectOutboxError(.invalid("resourceType Observation does not match the URL's Condition")) {
            try enqueue(.update, "Condition", "c1", #"{"resourceType":"Observation","id":"c1"}"#)
        }
        #expect(throws: OutboxError.self) { try enqueue(.create, "Patient", nil, "{") }
        #expect((try? replica.outbox.entries().isEmpty) == true)
    }

    @Test func oversizedResourcesAreRefused() throws {
        let small = try Replica.open(directory: dir.path + "/small", kek: kek, keySource: "test key", sizeLimit: 1024)
        let note = String(repeating: "n", count: 2000)
        let body = #"{"resourceType":"Patient","text":{"div":"\#(note)"}}"#
        do {
            _ = try small.outbox.enqueue(
                LocalChange(
                    operation: .create, resourceType: "Patient", id: nil, resource: Data(body.utf8), author: "a"))
            Issue.record("an oversized resource was queued")
        } catch {
            #expect(error == .invalid("the resource is larger than 1024 bytes"))
        }
    }

    // MARK: References

    @Test func referencesToLocalCreatesAreRecorded() throws {
        let patient = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"New"}]}"#)
        let observation = try enqueue(
            .create, "Observation", nil,
            #"{"resourceType":"Observation","subject":{"reference":"Patient/\#(patient.localID)"},"performer":[{"reference":"Patient/p1"},{"reference":"Practitioner/unknown"}],"focus":[{"reference":"Patient/\#(patient.localID)/_history/1"}]}"#
        )
        #expect(try entry(observation.seq).payload.references == ["Patient/\(patient.localID)"])
        let condition = try enqueue(
            .update, "Condition", "c1",
            #"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/\#(patient.localID)"}}"#)
        #expect(try entry(condition.seq).payload.references == ["Patient/\(patient.localID)"])
        #expect(try entry(patient.seq).payload.references == [])

        // The plan built from the stored entries sends the patient first.
        let entries = try replica.outbox.entries(states: [.pending, .parked, .conflict])
        let plan = ReplayPlan.plan(
            entries.map {
                ReplayPlan.Item(
                    seq: $0.seq, state: $0.state, operation: $0.operation, target: "\($0.resourceType)/\($0.localID)",
                    after: $0.payload.after, references: $0.payload.references)
            }, onServer: { _ in false })
        #expect(plan.ready == [patient.seq])
        let wait = ReplayPlan.Wait.reference(target: "Patient/\(patient.localID)", seq: patient.seq, state: .pending)
        #expect(plan.waiting == [observation.seq: wait, condition.seq: wait])
    }

    @Test func aReferenceToADroppedCreateIsStillRecorded() throws {
        let patient = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient"}"#)
        try enqueue(.delete, "Patient", patient.localID)
        let observation = try enqueue(
            .create, "Observation", nil,
            #"{"resourceType":"Observation","subject":{"reference":"Patient/\#(patient.localID)"}}"#)
        // Recorded, so that replay reports it instead of sending a dangling local id.
        #expect(try entry(observation.seq).payload.references == ["Patient/\(patient.localID)"])
    }

    // MARK: Replay results

    @Test func aReplayedCreateMapsItsLocalIDAndLandsInTheMirror() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"Neuf"}]}"#)
        let entry = try entry(created.seq)
        let result = try serverVersion(of: entry, serverID: "srv-100", version: "1")
        try replica.outbox.complete(entry, serverID: "srv-100", resultVersion: "1", result: result, deleted: false)

        #expect(try replica.outbox.serverID(ofLocal: "Patient", created.localID) == "srv-100")
        #expect(try replica.outbox.serverID(ofLocal: "Patient", "p1") == nil)
        let done = try self.entry(created.seq)
        #expect(done.state == .done)
        #expect(done.payload.serverID == "srv-100")
        #expect(done.payload.resultVersion == "1")
        #expect(try replica.records.resource(type: "Patient", id: "srv-100")?.versionId == "1")
        guard case .server(let stored) = try replica.outbox.localView(type: "Patient", id: created.localID) else {
            Issue.record("expected the server's version")
            return
        }
        #expect(stored.id == "srv-100")
        #expect(stored.versionId == "1")
        #expect(try value(stored.json)["name"] == [["family": "Neuf"]])
        #expect(try replica.outbox.counts() == [.done: 1])
        #expect(try replica.records.searchPatients(PatientQuery(family: "neuf")).map(\.id) == ["srv-100"])

        // Later edits through the local id go to the server's record, with its version as base.
        let updated = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","name":[{"family":"Neuf2"}]}"#)
        #expect(updated.localID == created.localID)
        let update = try self.entry(updated.seq)
        #expect(update.payload.serverID == "srv-100")
        #expect(update.payload.localID == "srv-100")
        #expect(update.payload.baseVersion == "1")
        #expect(try value(update.payload.resource)["id"] == "srv-100")

        // And a new reference to the local id counts as on the server.
        let observation = try enqueue(
            .create, "Observation", nil,
            #"{"resourceType":"Observation","subject":{"reference":"Patient/\#(created.localID)"}}"#)
        #expect(try self.entry(observation.seq).payload.references == ["Patient/\(created.localID)"])
    }

    @Test func anEditChainedAfterACreateInFlightStaysVisibleOnceTheCreateIsReplayed() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"A"}]}"#)
        let chained = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","name":[{"family":"B"}]}"#,
            isInFlight: { $0 == created.seq })
        #expect(chained.seq != created.seq)
        #expect(try entry(chained.seq).payload.after == created.seq)

        let entry = try entry(created.seq)
        let result = try serverVersion(of: entry, serverID: "srv-7", version: "1")
        try replica.outbox.complete(entry, serverID: "srv-7", resultVersion: "1", result: result, deleted: false)

        // The chained edit is not on the server yet: the local view must still show it.
        guard case .pending(let body, let seq, _) = try replica.outbox.localView(type: "Patient", id: created.localID)
        else {
            Issue.record("the queued edit is hidden by the replayed create")
            return
        }
        #expect(seq == chained.seq)
        #expect(try value(body)["name"] == [["family": "B"]])
    }

    @Test func aFurtherEditAfterTheCreateIsReplayedFollowsTheChainedEdit() throws {
        let created = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient","name":[{"family":"A"}]}"#)
        let chained = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","name":[{"family":"B"}]}"#,
            isInFlight: { $0 == created.seq })
        let entry = try entry(created.seq)
        let result = try serverVersion(of: entry, serverID: "srv-8", version: "1")
        try replica.outbox.complete(entry, serverID: "srv-8", resultVersion: "1", result: result, deleted: false)

        // Another edit of the same record, through its local id.
        let further = try enqueue(
            .update, "Patient", created.localID,
            #"{"resourceType":"Patient","id":"\#(created.localID)","name":[{"family":"C"}]}"#)
        // It must not be replayed independently of (or before) the chained edit #2: it is
        // either squashed into it or chained after it.
        let open = try replica.outbox.entries(states: [.pending, .parked, .conflict])
        let plan = ReplayPlan.plan(
            open.map {
                ReplayPlan.Item(
                    seq: $0.seq, state: $0.state, operation: $0.operation, target: "\($0.resourceType)/\($0.localID)",
                    after: $0.payload.after, references: $0.payload.references)
            }, onServer: { _ in true })
        let furtherAfter = try self.entry(further.seq).payload.after
        #expect(further.seq == chained.seq || furtherAfter == chained.seq)
        #expect(plan.ready.count == 1)
    }

    @Test func aReplayedDeleteTombstones() throws {
        let deleted = try enqueue(.delete, "Observation", "o1")
        try replica.outbox.complete(
            try entry(deleted.seq), serverID: "o1", resultVersion: "2", result: nil, deleted: true)
        #expect(try entry(deleted.seq).state == .done)
        #expect(try replica.records.resource(type: "Observation", id: "o1") == nil)
        guard case .notFound = try replica.outbox.localView(type: "Observation", id: "o1") else {
            Issue.record("expected notFound")
            return
        }
    }

    // MARK: Operator decisions

    @Test func aParkedEntryIsRetried() throws {
        let queued = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"bad"}]}"#)
        var payload = try entry(queued.seq).payload
        payload.attempts = 1
        payload.reason = "HTTP 422: error invalid: bad code"
        payload.outcome = Data(#"{"resourceType":"OperationOutcome"}"#.utf8)
        try replica.outbox.update(try entry(queued.seq), state: .parked, payload: payload)
        #expect(try entry(queued.seq).state == .parked)
        #expect(try entry(queued.seq).payload.reason == "HTTP 422: error invalid: bad code")
        #expect(try replica.outbox.counts() == [.parked: 1])

        try replica.outbox.retryParked(seq: queued.seq, actor: "uid 1000")
        let retried = try entry(queued.seq)
        #expect(retried.state == .pending)
        #expect(retried.payload.reason == nil)
        #expect(retried.payload.outcome == nil)
        #expect(retried.payload.attempts == 1)
        #expect(retried.payload.resource == payload.resource)
        #expect(try replica.outbox.counts() == [.pending: 1])

        let audit = try replica.audit.records()
        #expect(audit.count == 1)
        #expect(audit.last?.actor == "uid 1000")
        #expect(audit.last?.action == "outbox-retry")
        #expect(audit.last?.target == "Condition/c1")
        #expect(audit.last?.detail == "entry #\(queued.seq)")
        #expect(try replica.audit.verify() == .success(1))

        expectOutboxError(.wrongState(seq: queued.seq, state: .pending, expected: "parked")) {
            try replica.outbox.retryParked(seq: queued.seq, actor: "uid 1000")
        }
        expectOutboxError(.noSuchEntry(999)) { try replica.outbox.retryParked(seq: 999, actor: "uid 1000") }
        // Refusals are not audited.
        #expect(try replica.audit.records().count == 1)
    }

    /// Queues an update of c1 and puts it in conflict with a server version 3.
    func conflictingUpdate(_ operation: OutboxOperation = .update) throws -> (seq: Int64, remote: Data) {
        let queued: QueuedChange
        if operation == .delete {
            queued = try enqueue(.delete, "Condition", "c1")
        } else {
            queued = try enqueue(
                .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"local"}]}"#)
        }
        let remote = Data(
            #"{"resourceType":"Condition","id":"c1","meta":{"versionId":"3"},"subject":{"reference":"Patient/p1"},"note":[{"text":"remote"}]}"#
                .utf8)
        var payload = try entry(queued.seq).payload
        payload.remote = remote
        payload.remoteVersion = "3"
        payload.remoteDeleted = false
        payload.conflicts = [
            MergeConflict(
                path: "/note/0/text", base: "v2", local: operation == .delete ? nil : "local", remote: "remote")
        ]
        try replica.outbox.update(try entry(queued.seq), state: .conflict, payload: payload)
        return (queued.seq, remote)
    }

    @Test func keepingTheRemoteVersionClosesTheEntry() throws {
        let (seq, _) = try conflictingUpdate()
        try replica.outbox.resolveConflict(seq: seq, choice: .remote, actor: "dr-b")
        let entry = try entry(seq)
        #expect(entry.state == .discarded)
        #expect(entry.payload.reason == "conflict resolved: the EHR's version kept")
        #expect(entry.payload.resolution?.hasPrefix("kept remote by dr-b at ") == true)
        guard case .server(let stored) = try replica.outbox.localView(type: "Condition", id: "c1") else {
            Issue.record("expected the mirrored version")
            return
        }
        #expect(stored.json == Self.condition)
        let audit = try #require(try replica.audit.records().last)
        #expect(audit.action == "conflict-resolve")
        #expect(audit.actor == "dr-b")
        #expect(audit.target == "Condition/c1")
        #expect(audit.detail == "entry #\(seq), kept remote")
    }

    @Test func keepingTheLocalVersionRequeuesItOverTheRemote() throws {
        let (seq, remote) = try conflictingUpdate()
        let before = try entry(seq)
        try replica.outbox.resolveConflict(seq: seq, choice: .local, actor: "dr-b")
        let entry = try entry(seq)
        #expect(entry.state == .pending)
        #expect(entry.operation == .update)
        #expect(entry.payload.force == true)
        #expect(entry.payload.base == remote)
        #expect(entry.payload.baseVersion == "3")
        #expect(entry.payload.after == nil)
        #expect(entry.payload.reason == nil)
        #expect(entry.payload.resource == before.payload.resource)
        #expect(entry.payload.resolution?.hasPrefix("kept local by dr-b at ") == true)
        #expect(try replica.audit.records().last?.detail == "entry #\(seq), kept local")
    }

    @Test func aMergedVersionFromTheReviewerIsQueued() throws {
        let (seq, _) = try conflictingUpdate(.delete)
        let merged = Data(
            #"{"resourceType":"Condition","meta":{"versionId":"3","lastUpdated":"2026-01-05T00:00:00Z"},"note":[{"text":"merged"}]}"#
                .utf8)
        try replica.outbox.resolveConflict(seq: seq, choice: .content(merged), actor: "dr-b")
        let entry = try entry(seq)
        #expect(entry.state == .pending)
        #expect(entry.operation == .update)
        #expect(entry.payload.force == true)
        #expect(entry.payload.baseVersion == "3")
        let resource = try value(entry.payload.resource)
        #expect(resource["id"] == "c1")
        #expect(resource["note"] == [["text": "merged"]])
        #expect(resource["meta"] == nil)
        #expect(try replica.audit.records().last?.detail == "entry #\(seq), kept file")
    }

    @Test func aMergedVersionOfAnotherRecordIsRefused() throws {
        let (seq, _) = try conflictingUpdate()
        let before = try entry(seq)
        expectOutboxError(.invalid("the merged resource's id is not the conflicting record's id")) {
            try replica.outbox.resolveConflict(
                seq: seq, choice: .content(Data(#"{"resourceType":"Condition","id":"c2"}"#.utf8)), actor: "dr-b")
        }
        expectOutboxError(.invalid("resourceType Observation does not match the URL's Condition")) {
            try replica.outbox.resolveConflict(
                seq: seq, choice: .content(Data(#"{"resourceType":"Observation","id":"c1"}"#.utf8)), actor: "dr-b")
        }
        #expect(try entry(seq) == before)
        #expect(try replica.audit.records().isEmpty)
    }

    @Test func onlyConflictsAreResolved() throws {
        let queued = try enqueue(.delete, "Observation", "o1")
        expectOutboxError(.wrongState(seq: queued.seq, state: .pending, expected: "conflict")) {
            try replica.outbox.resolveConflict(seq: queued.seq, choice: .remote, actor: "dr-b")
        }
        expectOutboxError(.noSuchEntry(42)) {
            try replica.outbox.resolveConflict(seq: 42, choice: .local, actor: "dr-b")
        }
        #expect(try entry(queued.seq).state == .pending)
    }

    @Test func countsPerState() throws {
        let a = try enqueue(.update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1"}"#)
        let b = try enqueue(.delete, "Observation", "o1")
        let c = try enqueue(.update, "Patient", "p1", #"{"resourceType":"Patient","id":"p1"}"#)
        let d = try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient"}"#)
        try enqueue(.delete, "Patient", d.localID)
        try enqueue(.create, "Patient", nil, #"{"resourceType":"Patient"}"#)
        try replica.outbox.update(try entry(a.seq), state: .parked, payload: try entry(a.seq).payload)
        try replica.outbox.update(try entry(b.seq), state: .conflict, payload: try entry(b.seq).payload)
        try replica.outbox.complete(try entry(c.seq), serverID: "p1", resultVersion: "4", result: nil, deleted: false)
        #expect(try replica.outbox.counts() == [.parked: 1, .conflict: 1, .done: 1, .discarded: 1, .pending: 1])
        #expect(try replica.outbox.entries(states: [.parked, .conflict]).map(\.seq) == [a.seq, b.seq])
        #expect(try replica.outbox.entries().count == 5)
    }

    // MARK: Durability and integrity

    @Test func entriesSurviveAReopen() throws {
        let queued = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"durable"}]}"#)
        let before = try entry(queued.seq)
        replica.close()
        let reopened = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        #expect(try reopened.outbox.entry(seq: queued.seq) == before)
        // Numbers keep increasing after a reopen.
        let next = try reopened.outbox.enqueue(
            LocalChange(operation: .delete, resourceType: "Observation", id: "o1", resource: nil, author: "a"))
        #expect(next.seq > queued.seq)
    }

    @Test func theClearColumnsAreBoundToTheSealedEntry() throws {
        let queued = try enqueue(
            .update, "Condition", "c1", #"{"resourceType":"Condition","id":"c1","note":[{"text":"x"}]}"#)
        replica.close()
        try OutsideWriter.write(dir.file(Replica.fileName)) { db in
            try db.execute(sql: "UPDATE outbox SET state = 'done' WHERE seq = ?", arguments: [queued.seq])
        }
        let reopened = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        #expect(throws: ReplicaError.corruptState("outbox entry #\(queued.seq)")) {
            try reopened.outbox.entry(seq: queued.seq)
        }
    }
}
