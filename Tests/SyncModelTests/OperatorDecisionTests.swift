import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

@Suite struct OperatorDecisionTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    func open(_ key: KeyEncryptionKey? = nil) throws -> Replica {
        try Replica.open(directory: dir.path, kek: key ?? kek, keySource: "test key")
    }

    @Test func approvingARegressionRestoresTheServersOlderVersion() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Condition", "c1", version: "3")])
        #expect(try replica.records.apply([resourceJSON("Condition", "c1", version: "2")]).held == 1)
        // Held again by a later cycle: not duplicated.
        #expect(try replica.records.apply([resourceJSON("Condition", "c1", version: "2")]).held == 1)
        let held = try replica.held.list()
        #expect(held.count == 1)
        #expect(held[0].reason == "regression")
        #expect(held[0].deletion == false)
        #expect(held[0].versionId == "2")
        #expect(try replica.held.decide(.approve, rows: [held[0].row]) == 1)
        #expect(try replica.records.resource(type: "Condition", id: "c1")?.versionId == "2")
        #expect(try replica.held.list().isEmpty)
        #expect(try replica.held.summary().total == 0)
    }

    @Test func rejectingKeepsTheReplicaAndIsNotAskedAgain() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1"), resourceJSON("Patient", "p2")])
        let missing = try replica.records.missing(type: "Patient", serverIDs: ["p1"])
        #expect(missing.count == 1)
        try replica.held.holdDeletions([], missing: missing)
        #expect(try replica.held.list().map(\.deletion) == [true])
        #expect(try replica.held.decide(.reject, rows: nil) == 1)
        try replica.held.holdDeletions([], missing: missing)
        #expect(try replica.held.list().isEmpty)
        #expect(try replica.records.resource(type: "Patient", id: "p2") != nil)
    }

    @Test func approvingAHeldDeletionTombstones() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1", extra: #","name":[{"family":"Held"}]"#)])
        try replica.held.holdDeletions([(type: "Patient", id: "p1")], missing: [])
        #expect(try replica.held.decide(.approve, rows: nil) == 1)
        #expect(try replica.records.resource(type: "Patient", id: "p1") == nil)
        #expect(try replica.records.searchPatients(PatientQuery(name: "held")).isEmpty)
    }

    @Test func unknownRowsAreRefused() throws {
        let replica = try open()
        #expect(throws: ReplicaError.self) { try replica.held.decide(.approve, rows: [42]) }
    }

    @Test func theRecoveryKeyOpensTheReplicaAndIsShownOnce() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1")])
        let recovery = try #require(try replica.createRecoveryKey())
        #expect(try replica.createRecoveryKey() == nil)
        replica.close()
        let printed = recovery.text
        #expect(printed.split(separator: "-").count == 13)
        let parsed = try #require(RecoveryKey(text: printed.lowercased().replacingOccurrences(of: "-", with: " ")))
        #expect(parsed == recovery)
        let reopened = try open(parsed.keyEncryptionKey)
        #expect(try reopened.records.resource(type: "Patient", id: "p1") != nil)
        // A replaced recovery key stops the old one working.
        let newer = try #require(try reopened.createRecoveryKey(replace: true))
        reopened.close()
        #expect(throws: ReplicaError.self) { try open(parsed.keyEncryptionKey) }
        #expect(try open(newer.keyEncryptionKey).records.count() == 1)
        #expect(RecoveryKey(text: "not-a-key") == nil)
    }
}
