import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// `syncctl outbox` and `syncctl conflicts` screens, compared with
/// `testdata/<case>/stdout` (Litestream style), built from constructed values.
/// Regenerate with `EHR_SYNC_UPDATE_GOLDEN=1 swift test --filter OutboxGolden`.
@Suite struct OutboxGoldenTests {
    static let pending = OutboxItem(
        seq: 12, state: "pending", operation: "update", resourceType: "Patient",
        localTime: "2026-11-28T18:20:00.000Z", author: "Dr Alice Martin", attempts: 0, reason: nil,
        updatedAt: "2026-11-28T18:20:00.000Z")
    static let waiting = OutboxItem(
        seq: 14, state: "waiting", operation: "create", resourceType: "Observation",
        localTime: "2026-11-28T18:25:10.000Z", author: "Dr Alice Martin", attempts: 0,
        reason: "waits for #13, the creation of the Encounter it references (parked)",
        updatedAt: "2026-11-28T18:25:10.000Z")
    static let parked = OutboxItem(
        seq: 13, state: "parked", operation: "create", resourceType: "Encounter",
        localTime: "2026-11-28T18:24:00.000Z", author: "reception", attempts: 1,
        reason: "HTTP 422: Encounter.status: value is required", updatedAt: "2026-11-29T09:41:00.000Z")
    static let conflict = OutboxItem(
        seq: 9, state: "conflict", operation: "update", resourceType: "AllergyIntolerance",
        localTime: "2026-11-28T17:02:00.000Z", author: "Dr Bruno Petit", attempts: 1, reason: nil,
        updatedAt: "2026-11-29T09:40:30.000Z")
    static let done = OutboxItem(
        seq: 3, state: "done", operation: "create", resourceType: "Condition",
        localTime: "2026-11-28T16:00:00.000Z", author: "Dr Bruno Petit", attempts: 1, reason: nil,
        updatedAt: "2026-11-29T09:40:02.000Z")
    static let resolved = OutboxItem(
        seq: 5, state: "done", operation: "update", resourceType: "Patient",
        localTime: "2026-11-28T16:30:00.000Z", author: "reception", attempts: 2,
        reason: "kept local by amartin (uid 1001) at 2026-11-29T09:45:00.000Z",
        updatedAt: "2026-11-29T09:46:00.000Z")
    static let discarded = OutboxItem(
        seq: 7, state: "discarded", operation: "update", resourceType: "MedicationRequest",
        localTime: "2026-11-28T16:45:00.000Z", author: "Dr Alice Martin", attempts: 1,
        reason: "the EHR's version was kept (policy remote-wins for MedicationRequest)",
        updatedAt: "2026-11-29T09:40:05.000Z")

    /// Base, local and EHR versions of a Patient edited on both sides: the practice
    /// corrected the birth date and the family name, the EHR another birth date and name.
    static let fieldConflict = ConflictDetail(
        seq: 9, resourceType: "Patient", id: "pat-0042", operation: "update", author: "Dr Bruno Petit",
        localTime: "2026-11-28T17:02:00.000Z", remoteVersion: "7", remoteDeleted: false,
        base:
            #"{"birthDate":"1970-01-01","id":"pat-0042","meta":{"versionId":"5"},"name":[{"family":"Durand","given":["Claire"],"use":"official"}],"resourceType":"Patient"}"#,
        local:
            #"{"birthDate":"1970-01-02","id":"pat-0042","name":[{"family":"Durant","given":["Claire"],"use":"official"}],"resourceType":"Patient"}"#,
        remote:
            #"{"birthDate":"1971-01-01","id":"pat-0042","meta":{"versionId":"7"},"name":[{"family":"Dupont","given":["Claire"],"use":"official"}],"resourceType":"Patient","weight":1.50}"#,
        places: [
            .init(path: "birthDate", base: #""1970-01-01""#, local: #""1970-01-02""#, remote: #""1971-01-01""#),
            .init(path: "name[use=official].family", base: #""Durand""#, local: #""Durant""#, remote: #""Dupont""#),
            .init(path: "telecom[phone|555-0100].use", base: nil, local: #""home""#, remote: #""work""#),
        ])

    /// Edited here, deleted on the EHR meanwhile.
    static let editVersusDelete = ConflictDetail(
        seq: 21, resourceType: "Observation", id: "obs-7", operation: "update", author: "Dr Alice Martin",
        localTime: "2026-11-28T18:30:00.000Z", remoteVersion: nil, remoteDeleted: true,
        base: #"{"code":{"text":"Weight"},"id":"obs-7","resourceType":"Observation","status":"preliminary"}"#,
        local:
            #"{"code":{"text":"Weight"},"id":"obs-7","resourceType":"Observation","status":"final","valueQuantity":{"unit":"kg","value":72.50}}"#,
        remote: nil,
        places: [.init(path: "", base: "{}", local: "{}", remote: nil)])

    /// Deleted here, changed on the EHR meanwhile.
    static let deleteVersusEdit = ConflictDetail(
        seq: 22, resourceType: "Condition", id: "cond-3", operation: "delete", author: "reception",
        localTime: "2026-11-28T18:40:00.000Z", remoteVersion: "4", remoteDeleted: false,
        base: #"{"id":"cond-3","resourceType":"Condition"}"#, local: nil,
        remote: #"{"id":"cond-3","meta":{"versionId":"4"},"note":[],"resourceType":"Condition","subject":{}}"#,
        places: [.init(path: "", base: "{}", local: nil, remote: "{}")])

    /// Parked, then sent again by an operator: pending with an attempt behind it.
    static let retried = OutboxItem(
        seq: 15, state: "pending", operation: "update", resourceType: "Encounter",
        localTime: "2026-11-28T18:26:00.000Z", author: "reception", attempts: 1, reason: nil,
        updatedAt: "2026-11-29T09:50:00.000Z")

    static let cases: [(String, String)] = [
        ("outbox-open", OutboxItem.listText([conflict, pending, parked, waiting, retried])),
        ("outbox-pending", OutboxItem.listText([pending])),
        (
            "outbox-all",
            OutboxItem.listText([done, resolved, discarded, conflict, pending, parked, waiting], all: true)
        ),
        ("outbox-empty", OutboxItem.listText([])),
        ("outbox-empty-all", OutboxItem.listText([], all: true)),
        ("conflicts-list", OutboxItem.conflictsText([conflict, with(conflict, seq: 21, type: "Observation")])),
        ("conflicts-empty", OutboxItem.conflictsText([])),
        ("conflicts-show-field", fieldConflict.text()),
        ("conflicts-show-deleted-remotely", editVersusDelete.text()),
        ("conflicts-show-deleted-locally", deleteVersusEdit.text()),
    ]

    static func with(_ item: OutboxItem, seq: Int64, type: String) -> OutboxItem {
        var copy = item
        copy.seq = seq
        copy.resourceType = type
        return copy
    }

    @Test(arguments: cases.map(\.0))
    func screenMatchesGolden(name: String) throws {
        let text = try #require(Self.cases.first { $0.0 == name }?.1)
        let golden = try GoldenFile.expected(name, current: text)
        #expect(text == golden)
    }

    @Test func fullVersionsKeepNumbersAsWritten() {
        let text = Self.fieldConflict.text()
        #expect(text.contains(#""weight": 1.50"#))
        #expect(Self.editVersusDelete.text().contains(#""value": 72.50"#))
    }

    @Test func screensHaveNoTrailingSpaces() {
        for (name, text) in Self.cases {
            for line in text.split(separator: "\n") {
                #expect(line.last != " ", "\(name): \(line)")
            }
        }
    }

    @Test func jsonOfAConflictRoundTrips() throws {
        let data = try JSONEncoder().encode(Self.editVersusDelete)
        #expect(try JSONDecoder().decode(ConflictDetail.self, from: data) == Self.editVersusDelete)
        let items = try JSONEncoder().encode([Self.pending, Self.parked])
        #expect(try JSONDecoder().decode([OutboxItem].self, from: items) == [Self.pending, Self.parked])
    }
}
