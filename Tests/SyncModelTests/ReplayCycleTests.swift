import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// Cycles among local creates (#14): one member of each is sent without its references into
/// the cycle and restored afterwards; the plan never deadlocks.
@Suite struct ReplayCycleTests {
    typealias Item = ReplayPlan.Item

    static func create(_ seq: Int64, _ target: String, _ references: [String] = [], detachable: Set<String> = [])
        -> Item
    {
        Item(
            seq: seq, state: .pending, operation: .create, target: target, references: references,
            detachable: detachable)
    }

    @Test func anEncounterAndItsDiagnosisAreSentOneAfterTheOther() {
        // Encounter.diagnosis[].condition → the Condition (repeating); Condition.encounter → the
        // Encounter (singular): the Encounter goes first, without its diagnosis.
        let items = [
            Self.create(1, "Encounter/e", ["Condition/c"], detachable: ["Condition/c"]),
            Self.create(2, "Condition/c", ["Encounter/e"]),
        ]
        let first = ReplayPlan.plan(items, onServer: { _ in false })
        #expect(first.ready == [1])
        #expect(first.detached == [1: ["Condition/c"]])
        #expect(first.waiting[2] == .reference(target: "Encounter/e", seq: 1, state: .pending))
        let second = ReplayPlan.plan([items[1]], onServer: { $0 == "Encounter/e" })
        #expect(second.ready == [2] && second.detached.isEmpty)
    }

    @Test func theMemberThatLosesNoSingularElementIsChosenEvenIfNewer() {
        let items = [
            Self.create(1, "Condition/c", ["Encounter/e"]),
            Self.create(2, "Encounter/e", ["Condition/c"], detachable: ["Condition/c"]),
        ]
        let plan = ReplayPlan.plan(items, onServer: { _ in false })
        #expect(plan.ready == [2] && plan.detached == [2: ["Condition/c"]])
    }

    @Test(arguments: [
        // Observation.hasMember ↔ derivedFrom, both repeating.
        [("Observation/panel", ["Observation/member"]), ("Observation/member", ["Observation/panel"])],
        // Patient.link pairs.
        [("Patient/a", ["Patient/b"]), ("Patient/b", ["Patient/a"])],
        // A DocumentReference, the Encounter it documents, the Condition diagnosed there.
        [
            ("DocumentReference/d", ["Encounter/e"]), ("Encounter/e", ["Condition/c"]),
            ("Condition/c", ["DocumentReference/d"]),
        ],
    ])
    func everyCycleShapeDrainsOneMemberAtATime(members: [(String, [String])]) {
        let items = members.enumerated().map { Self.create(Int64($0.offset + 1), $0.element.0, $0.element.1) }
        let (sent, restores) = Self.drain(items)
        #expect(Set(sent) == Set(items.map(\.seq)))
        #expect(restores == 1, "one member detached, restored once the others exist")
    }

    @Test func aCycleBlockedFromOutsideWaitsForThatAndSaysSo() {
        let items = [
            Item(seq: 1, state: .parked, operation: .create, target: "Patient/p"),
            Self.create(2, "Encounter/e", ["Condition/c", "Patient/p"], detachable: ["Condition/c"]),
            Self.create(3, "Condition/c", ["Encounter/e", "Patient/p"]),
        ]
        let plan = ReplayPlan.plan(items, onServer: { _ in false })
        #expect(plan.ready.isEmpty && plan.detached.isEmpty)
        #expect(plan.waiting[2] != nil && plan.waiting[3] != nil)
    }

    /// What a create can be sent without means parsing it: asked only of a cycle's members.
    @Test func onlyTheMembersOfACycleAreParsed() {
        let items = [
            Self.create(2, "Encounter/e", ["Patient/p", "Condition/c"]),
            Self.create(3, "Condition/c", ["Encounter/e"]),
            Self.create(4, "Observation/o", ["Encounter/e"]),
        ]
        var asked: [Int64] = []
        let plan = ReplayPlan.plan(
            items, onServer: { $0 == "Patient/p" },
            detachable: { item in
                asked.append(item.seq)
                return item.target == "Encounter/e" ? ["Condition/c"] : []
            })
        #expect(Set(asked) == [2, 3])
        #expect(plan.ready == [2] && plan.detached == [2: ["Condition/c"]])
    }

    @Test func aLongChainDoesNotExhaustTheStack() {
        let n = 20_000
        let items = (0..<n).map { i in Self.create(Int64(i + 1), "Observation/o\(i)", ["Observation/o\((i + 1) % n)"]) }
        let plan = ReplayPlan.plan(items, onServer: { _ in false })
        #expect(plan.ready == [1] && plan.detached == [1: ["Observation/o1"]])
    }

    /// Any set of local creates and edits with arbitrary references between them: planning,
    /// sending what is ready and queuing the restores, again and again, sends everything.
    @Test(arguments: 0..<300)
    func thePlanAlwaysMakesProgress(seed: Int) {
        var random = SeededGenerator(seed: UInt64(seed))
        let count = Int.random(in: 1...14, using: &random)
        var items: [Item] = []
        var seq: Int64 = 0
        var targets: [String] = []
        for i in 0..<count {
            seq += 1
            let target = "Observation/l\(i)"
            targets.append(target)
            items.append(Item(seq: seq, state: .pending, operation: .create, target: target))
        }
        // Edits of some creates, after them.
        for target in targets where Bool.random(using: &random) {
            seq += 1
            let create = items.first { $0.target == target && $0.operation == .create }!
            items.append(Item(seq: seq, state: .pending, operation: .update, target: target, after: create.seq))
        }
        for index in items.indices {
            let references = targets.filter { _ in Int.random(in: 0..<4, using: &random) == 0 }
            items[index].references = references
            items[index].detachable = Set(references.filter { _ in Bool.random(using: &random) })
        }
        let (sent, _) = Self.drain(items)
        #expect(Set(sent) == Set(items.map(\.seq)), "seed \(seed): \(items.count - sent.count) never sent")
    }

    /// Plans and "sends" until nothing is pending, as the replay does: a sent create is on the
    /// server; a detached one queues an update restoring its references. Returns what was sent
    /// (original entries) and how many restores were queued.
    static func drain(_ initial: [Item]) -> (sent: [Int64], restores: Int) {
        var open = initial
        var onServer = Set<String>()
        var sent: [Int64] = []
        var restores = 0
        var nextSeq = (initial.map(\.seq).max() ?? 0) + 1
        let originals = Set(initial.map(\.seq))
        for _ in 0..<(initial.count * 4 + 10) {
            let plan = ReplayPlan.plan(open, onServer: { onServer.contains($0) })
            if plan.ready.isEmpty { break }
            for seq in plan.ready {
                guard let item = open.first(where: { $0.seq == seq }) else { continue }
                open.removeAll { $0.seq == seq }
                if originals.contains(seq) { sent.append(seq) }
                if item.operation == .create { onServer.insert(item.target) }
                if let detached = plan.detached[seq], !detached.isEmpty {
                    restores += 1
                    open.append(
                        Item(
                            seq: nextSeq, state: .pending, operation: .update, target: item.target,
                            references: detached))
                    nextSeq += 1
                }
            }
            // Edits chained after a create wait for it only while it is open.
            for index in open.indices
            where open[index].after.map({ after in !open.contains { $0.seq == after } }) ?? false {
                open[index].after = nil
            }
        }
        #expect(open.isEmpty, "left open: \(open.map(\.seq))")
        return (sent, restores)
    }
}
