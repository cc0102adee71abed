import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// Queued local changes, their bases, server replies and audit lines leave no identifying
/// plaintext in any file of the state directory (database, WAL, shared memory).
@Suite struct OutboxNoPlaintextTests {
    static let mirroredFamily = "Kerjean-Ploumanac"
    static let mirroredIdentifier = "NIR-1850275123456"
    static let mirroredID = "mirror-patient-8812"
    static let mirroredNote = "longstanding migraine with aura, on topiramate"
    static let newFamily = "Quillebeuf-Vantongeren"
    static let newGiven = "Anselmette"
    static let newIdentifier = "NIR-2970133987654"
    static let newNote = "suspected hereditary angioedema, sister affected"
    static let editedNote = "aura resolved after dose change in February"
    static let author = "dr-ottoline-brasseur"
    static let diagnostics = "Patient Kerjean-Ploumanac: duplicate identifier"

    @Test func queuedChangesLeaveNoPlaintextOnDisk() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        try replica.records.apply([
            Data(
                #"{"resourceType":"Patient","id":"\#(Self.mirroredID)","meta":{"versionId":"1"},"name":[{"family":"\#(Self.mirroredFamily)"}],"identifier":[{"value":"\#(Self.mirroredIdentifier)"}]}"#
                    .utf8),
            Data(
                #"{"resourceType":"Condition","id":"cond-mirror-4471","meta":{"versionId":"1"},"subject":{"reference":"Patient/\#(Self.mirroredID)"},"note":[{"text":"\#(Self.mirroredNote)"}]}"#
                    .utf8),
        ])

        func enqueue(_ operation: OutboxOperation, _ type: String, _ id: String?, _ json: String?) throws
            -> QueuedChange
        {
            try replica.outbox.enqueue(
                LocalChange(
                    operation: operation, resourceType: type, id: id, resource: json.map { Data($0.utf8) },
                    author: Self.author))
        }
        let patient = try enqueue(
            .create, "Patient", nil,
            #"{"resourceType":"Patient","name":[{"family":"\#(Self.newFamily)","given":["\#(Self.newGiven)"]}],"identifier":[{"value":"\#(Self.newIdentifier)"}]}"#
        )
        let condition = try enqueue(
            .create, "Condition", nil,
            #"{"resourceType":"Condition","subject":{"reference":"Patient/\#(patient.localID)"},"note":[{"text":"\#(Self.newNote)"}]}"#
        )
        _ = try enqueue(
            .update, "Condition", "cond-mirror-4471",
            #"{"resourceType":"Condition","id":"cond-mirror-4471","subject":{"reference":"Patient/\#(Self.mirroredID)"},"note":[{"text":"\#(Self.editedNote)"}]}"#
        )
        // An edit of the mirrored patient, rejected by the server with its name in the
        // diagnostics, then retried by an operator (audited).
        let edit = try enqueue(
            .update, "Patient", Self.mirroredID,
            #"{"resourceType":"Patient","id":"\#(Self.mirroredID)","name":[{"family":"\#(Self.mirroredFamily)"}],"active":false}"#
        )
        let entry = try #require(try replica.outbox.entry(seq: edit.seq))
        var payload = entry.payload
        payload.reason = "HTTP 422: error duplicate: \(Self.diagnostics)"
        payload.outcome = Data(
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate","diagnostics":"\#(Self.diagnostics)"}]}"#
                .utf8)
        try replica.outbox.update(entry, state: .parked, payload: payload)
        try replica.outbox.retryParked(seq: edit.seq, actor: Self.author)
        #expect(try replica.audit.verify() == .success(1))

        let clientIdentifiers = try replica.outbox.entries().map { String($0.payload.clientIdentifier.dropFirst(9)) }
        #expect(clientIdentifiers.count == 4)
        let needles =
            [
                Self.mirroredFamily, Self.mirroredIdentifier, Self.mirroredID, Self.mirroredNote, Self.newFamily,
                Self.newGiven, Self.newIdentifier, Self.newNote, Self.editedNote, Self.author, Self.diagnostics,
                "cond-mirror-4471", patient.localID, condition.localID,
            ] + clientIdentifiers

        // While open (the WAL holds the pages), then after a clean close.
        var hits = try PHINeedles.find(needles, inFilesBelow: dir.path)
        replica.close()
        hits.formUnion(try PHINeedles.find(needles, inFilesBelow: dir.path))
        #expect(hits.isEmpty, "plaintext found on disk: \(hits.sorted())")

        // The scanner finds what is there: a plaintext copy would be caught.
        try (Data("xx".utf8) + Data(Self.newFamily.utf8) + Data(patient.localID.utf8))
            .write(to: URL(fileURLWithPath: dir.file("canary.bin")))
        #expect(try PHINeedles.find(needles, inFilesBelow: dir.path) == [Self.newFamily, patient.localID])
    }
}
