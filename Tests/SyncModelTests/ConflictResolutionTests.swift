import Foundation
import SyncModel
import Testing

/// What a reviewer's decision does to an outbox entry (``ConflictResolution``).
@Suite struct ConflictResolutionTests {
    static let remote = Data(
        #"{"resourceType":"Observation","id":"s1","status":"final","meta":{"versionId":"5"}}"#.utf8)

    static func entry(_ state: OutboxState, operation: OutboxOperation = .update) -> OutboxEntry {
        var payload = OutboxPayload(
            localID: "s1", serverID: "s1", resource: Data(#"{"resourceType":"Observation","id":"s1"}"#.utf8),
            base: Data("{}".utf8), baseVersion: "3", after: 2, references: [], clientIdentifier: "urn:uuid:c",
            authors: Authors("alice"), localTime: "t0")
        payload.remote = remote
        payload.remoteVersion = "5"
        payload.reason = "HTTP 422: refused"
        payload.outcome = Data("{}".utf8)
        return OutboxEntry(
            seq: 4, operation: operation, state: state, resourceType: "Observation", payload: payload, updatedAt: "t0")
    }

    @Test func keepingTheRemoteClosesTheEntry() throws {
        let r = try ConflictResolution.resolve(Self.entry(.conflict), choice: .remote, actor: "dr", now: "t1")
        #expect(r.state == .discarded && r.operation == .update && r.kept == "remote")
        #expect(r.payload.reason == "conflict resolved: the EHR's version kept")
        #expect(r.payload.base == Data("{}".utf8) && r.payload.baseVersion == "3")  // untouched
        #expect(r.payload.resolution == "kept remote by dr at t1")
        #expect(r.payload.force == nil)
    }

    @Test(arguments: [OutboxOperation.update, .delete])
    func keepingTheLocalSendsItOverTheRemoteAtTheTime(operation: OutboxOperation) throws {
        let r = try ConflictResolution.resolve(
            Self.entry(.conflict, operation: operation), choice: .local, actor: "dr", now: "t1")
        #expect(r.state == .pending && r.operation == operation && r.kept == "local")
        #expect(r.payload.force == true)
        #expect(r.payload.base == Self.remote && r.payload.baseVersion == "5")
        #expect(r.payload.after == nil && r.payload.reason == nil)
        #expect(r.payload.resource == Self.entry(.conflict).payload.resource)
    }

    @Test func aReviewersContentBecomesAnUpdateOfTheSameRecord() throws {
        let merged = Data(
            #"{"resourceType":"Observation","status":"amended","meta":{"versionId":"5","lastUpdated":"x"}}"#.utf8)
        let r = try ConflictResolution.resolve(
            Self.entry(.conflict, operation: .delete), choice: .content(merged), actor: "dr", now: "t1")
        #expect(r.state == .pending && r.operation == .update && r.kept == "file")
        let object = try JSONValue(data: r.payload.resource ?? Data())
        #expect(object["id"] == "s1")
        #expect(object["status"] == "amended")
        #expect(object["meta"] == nil)  // server bookkeeping dropped
        #expect(r.payload.force == true && r.payload.base == Self.remote)
    }

    @Test func badContentIsRefusedWithAReason() {
        let entry = Self.entry(.conflict)
        #expect(throws: OutboxError.invalid("the merged resource's id is not the conflicting record's id")) {
            try ConflictResolution.resolve(
                entry, choice: .content(Data(#"{"resourceType":"Observation","id":"other"}"#.utf8)), actor: "dr",
                now: "t1")
        }
        #expect(throws: OutboxError.invalid("resourceType Patient does not match the URL's Observation")) {
            try ConflictResolution.resolve(
                entry, choice: .content(Data(#"{"resourceType":"Patient"}"#.utf8)), actor: "dr", now: "t1")
        }
    }

    @Test(arguments: [OutboxState.pending, .parked, .done, .discarded])
    func onlyConflictsAreResolved(state: OutboxState) {
        #expect(throws: OutboxError.wrongState(seq: 4, state: state, expected: "conflict")) {
            try ConflictResolution.resolve(Self.entry(state), choice: .local, actor: "dr", now: "t1")
        }
    }

    @Test func aRetriedParkedEntryForgetsItsRejection() throws {
        let payload = try ConflictResolution.retry(Self.entry(.parked))
        #expect(payload.reason == nil && payload.outcome == nil)
        #expect(payload.base == Data("{}".utf8) && payload.resource == Self.entry(.parked).payload.resource)
    }

    @Test(arguments: [OutboxState.pending, .conflict, .done, .discarded])
    func onlyParkedEntriesAreRetried(state: OutboxState) {
        #expect(throws: OutboxError.wrongState(seq: 4, state: state, expected: "parked")) {
            try ConflictResolution.retry(Self.entry(state))
        }
    }
}
