import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// Replay's decision once it has read the server's version (``RemoteDecision``): every row of
/// the table, then the property that makes replay idempotent: once a decision is carried out,
/// deciding again on what the server now holds finds the change already there.
@Suite struct RemoteDecisionTests {
    static let base: JSONValue = ["resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1970"]
    static let local: JSONValue = ["resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1970"]
    static let remoteOther: JSONValue = ["resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1971"]
    static let remoteClash: JSONValue = ["resourceType": "Patient", "id": "p", "gender": "other", "birthDate": "1970"]
    static let merged: JSONValue = ["resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1971"]

    static func withMeta(_ value: JSONValue, version: String) -> JSONValue {
        guard var object = value.objectValue else { return value }
        object["meta"] = ["versionId": .string(version), "lastUpdated": "2026-01-01T00:00:00Z"]
        return .object(object)
    }

    @Test(arguments: ConflictPolicy.allCases)
    func theChangeAlreadyThereIsNeverWrittenAgain(policy: ConflictPolicy) {
        // Equal but for meta: a replay whose answer was lost.
        let remote = Self.withMeta(Self.local, version: "9")
        #expect(
            RemoteDecision.decide(base: Self.base, local: Self.local, remote: remote, policy: policy) == .alreadyThere)
        #expect(RemoteDecision.decide(base: nil, local: Self.local, remote: remote, policy: policy) == .alreadyThere)
        // A delete whose target is already gone.
        #expect(RemoteDecision.decide(base: Self.base, local: .null, remote: .null, policy: policy) == .alreadyThere)
    }

    @Test(arguments: ConflictPolicy.allCases)
    func anUnchangedRemoteTakesTheLocalChange(policy: ConflictPolicy) {
        let remote = Self.withMeta(Self.base, version: "3")
        #expect(
            RemoteDecision.decide(base: Self.base, local: Self.local, remote: remote, policy: policy)
                == .write(Self.local))
        #expect(RemoteDecision.decide(base: Self.base, local: .null, remote: remote, policy: policy) == .delete)
    }

    @Test(arguments: [
        // (base, local, remote, policy, decision)
        (Optional(base), local, remoteOther, ConflictPolicy.remoteWins, RemoteDecision.discard),
        (base, local, remoteOther, .localWins, .write(local)),
        (base, .null, remoteOther, .localWins, .delete),
        (nil, local, remoteOther, .localWins, .write(local)),
        (base, local, remoteOther, .merge, .mergeThenWrite(merged)),
        // The merge is the remote already (the local edit made on the server too, plus more).
        (base, remoteOther, merged, .merge, .alreadyThere),
        // Both changed the same field.
        (
            base, local, remoteClash, .merge,
            .conflict([MergeConflict(path: "gender", base: "female", local: "male", remote: "other")])
        ),
        // The remote deleted what was edited locally; the local deleted what the remote edited.
        (base, local, .null, .merge, .conflict([MergeConflict(path: "", base: base, local: local, remote: nil)])),
        (
            base, .null, remoteOther, .merge,
            .conflict([MergeConflict(path: "", base: base, local: nil, remote: remoteOther)])
        ),
        // Manual: every concurrent change goes to review, even one that would merge.
        (
            base, local, remoteOther, .manual,
            .conflict([MergeConflict(path: "", base: base, local: local, remote: remoteOther)])
        ),
        // No base known (a create whose identifier matched, a chained edit): merge from nothing.
        (nil, local, remoteOther, .remoteWins, .discard),
    ])
    func row(base: JSONValue?, local: JSONValue, remote: JSONValue, policy: ConflictPolicy, expected: RemoteDecision) {
        #expect(RemoteDecision.decide(base: base, local: local, remote: remote, policy: policy) == expected)
    }

    @Test func metaNeverDecides() {
        let base = Self.withMeta(Self.base, version: "1")
        let local = Self.withMeta(Self.local, version: "1")
        let remote = Self.withMeta(Self.remoteOther, version: "2")
        #expect(
            RemoteDecision.decide(base: base, local: local, remote: remote, policy: .merge)
                == .mergeThenWrite(Self.merged))
    }

    // MARK: Property: carrying a decision out twice is a no-op

    static let fields = ["gender", "birthDate", "active", "note", "code"]

    static func randomResource(_ g: inout SeededGenerator) -> JSONValue {
        var object: JSONObject = ["resourceType": "Observation", "id": "o"]
        for field in fields where g.next() % 3 != 0 { object[field] = .string(String(g.next() % 3)) }
        return .object(object)
    }

    static func randomEdit(_ value: JSONValue, _ g: inout SeededGenerator) -> JSONValue {
        if g.next() % 10 == 0 { return .null }
        guard var object = value.objectValue else { return randomResource(&g) }
        for field in fields {
            switch g.next() % 5 {
            case 0: object[field] = nil
            case 1: object[field] = .string(String(g.next() % 3))
            default: break
            }
        }
        return .object(object)
    }

    @Test(arguments: 0..<8)
    func decidingAgainAfterCarryingItOutFindsItThere(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        var outcomes: [String: Int] = [:]
        for _ in 0..<300 {
            let base = Self.randomResource(&g)
            let local = Self.randomEdit(base, &g)
            let remote = Self.randomEdit(base, &g)
            for policy in ConflictPolicy.allCases {
                let decision = RemoteDecision.decide(base: base, local: local, remote: remote, policy: policy)
                let serverAfter: JSONValue
                switch decision {
                case .write(let content), .mergeThenWrite(let content): serverAfter = content
                case .delete: serverAfter = .null
                case .alreadyThere, .conflict, .discard:
                    outcomes["\(decision)".prefix(8).description, default: 0] += 1
                    continue
                }
                outcomes["written", default: 0] += 1
                // Replaying the same entry once the server holds the result is a no-op.
                #expect(
                    RemoteDecision.decide(base: base, local: local, remote: serverAfter, policy: policy)
                        == .alreadyThere, "seed \(seed) \(policy)")
                if case .mergeThenWrite = decision { continue }
                // The local version itself was written: a no-op under any policy, whatever the base.
                for again in ConflictPolicy.allCases {
                    #expect(
                        RemoteDecision.decide(base: nil, local: local, remote: serverAfter, policy: again)
                            == .alreadyThere)
                }
            }
        }
        #expect(outcomes["written", default: 0] > 100)
    }
}
