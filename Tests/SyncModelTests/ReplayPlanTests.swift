import SyncModel
import Testing

/// The causal order of replay, as a pure function of the open entries.
@Suite struct ReplayPlanTests {
    typealias Item = ReplayPlan.Item

    /// No local create is on the server.
    static func nothingOnServer(_: String) -> Bool { false }

    @Test func independentEntriesAreAllReadyInQueueOrder() {
        let items = [
            Item(seq: 7, state: .pending, operation: .delete, target: "Observation/o1"),
            Item(seq: 2, state: .pending, operation: .create, target: "Patient/l1"),
            Item(seq: 5, state: .pending, operation: .update, target: "Condition/c1"),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [2, 5, 7])
        #expect(result.waiting.isEmpty)
    }

    @Test func parkedAndConflictEntriesAreNeitherReadyNorWaiting() {
        let items = [
            Item(seq: 1, state: .parked, operation: .create, target: "Patient/l1"),
            Item(seq: 2, state: .conflict, operation: .update, target: "Condition/c1"),
            Item(seq: 3, state: .pending, operation: .update, target: "Condition/c2"),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [3])
        #expect(result.waiting.isEmpty)
    }

    @Test func aReferencedCreateGoesFirstAndTheDependantWaits() {
        let items = [
            Item(seq: 1, state: .pending, operation: .create, target: "Patient/l1"),
            Item(
                seq: 2, state: .pending, operation: .create, target: "Observation/l2", references: ["Patient/l1"]),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [1])
        #expect(result.waiting == [2: .reference(target: "Patient/l1", seq: 1, state: .pending)])
    }

    @Test func onceTheCreateIsOnTheServerTheDependantIsReady() {
        // The create is done: no longer among the open entries, and mapped to a server id.
        let items = [
            Item(
                seq: 2, state: .pending, operation: .create, target: "Observation/l2", references: ["Patient/l1"])
        ]
        let result = ReplayPlan.plan(items, onServer: { $0 == "Patient/l1" })
        #expect(result.ready == [2])
        #expect(result.waiting.isEmpty)
    }

    @Test func aChainedChangeWaitsForTheEarlierChangeOfTheSameRecord() {
        let items = [
            Item(seq: 3, state: .pending, operation: .update, target: "Condition/c1"),
            Item(seq: 4, state: .pending, operation: .update, target: "Condition/c1", after: 3),
            Item(seq: 5, state: .pending, operation: .delete, target: "Condition/c1", after: 4),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [3])
        #expect(
            result.waiting == [
                4: .earlierChange(seq: 3, state: .pending), 5: .earlierChange(seq: 4, state: .pending),
            ])
    }

    @Test func aChainWhoseEarlierChangeIsDoneIsReady() {
        // #3 was replayed: it is no longer open, so #4 only has to follow it in time.
        let items = [Item(seq: 4, state: .pending, operation: .update, target: "Condition/c1", after: 3)]
        #expect(ReplayPlan.plan(items, onServer: Self.nothingOnServer).ready == [4])
    }

    @Test(arguments: [OutboxState.parked, .conflict])
    func aBlockedDependencyBlocksOnlyItsDependants(state: OutboxState) {
        let items = [
            Item(seq: 1, state: state, operation: .create, target: "Patient/l1"),
            Item(seq: 2, state: state, operation: .update, target: "Condition/c1"),
            Item(
                seq: 3, state: .pending, operation: .create, target: "Encounter/l3", references: ["Patient/l1"]),
            Item(seq: 4, state: .pending, operation: .update, target: "Condition/c1", after: 2),
            Item(seq: 5, state: .pending, operation: .create, target: "Patient/l5"),
            Item(seq: 6, state: .pending, operation: .update, target: "Observation/o6"),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [5, 6])
        #expect(result.waiting[3] == .reference(target: "Patient/l1", seq: 1, state: state))
        #expect(result.waiting[4] == .earlierChange(seq: 2, state: state))
        #expect(result.waiting[3]?.description.contains("(\(state.rawValue))") == true)
        #expect(result.waiting[4]?.description.contains("(\(state.rawValue))") == true)
    }

    @Test func aReferenceToACreateThatWasDroppedIsReported() {
        // Patient/l1 was created and deleted locally: neither open nor on the server.
        let items = [
            Item(
                seq: 3, state: .pending, operation: .create, target: "Observation/l3", references: ["Patient/l1"]),
            Item(seq: 4, state: .pending, operation: .update, target: "Condition/c1"),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [4])
        #expect(result.waiting == [3: .droppedReference(target: "Patient/l1")])
    }

    @Test func anEarlierEntryReferencingALaterCreateWaitsForIt() {
        // #2 was edited to reference a patient created afterwards (#5).
        let items = [
            Item(seq: 2, state: .pending, operation: .update, target: "Condition/c1", references: ["Patient/l5"]),
            Item(seq: 5, state: .pending, operation: .create, target: "Patient/l5"),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.ready == [5])
        #expect(result.waiting == [2: .reference(target: "Patient/l5", seq: 5, state: .pending)])
    }

    @Test func aCreateReferencingItselfIsNotBlockedByItself() {
        let items = [
            Item(seq: 1, state: .pending, operation: .create, target: "Patient/l1", references: ["Patient/l1"])
        ]
        #expect(ReplayPlan.plan(items, onServer: Self.nothingOnServer).ready == [1])
    }

    @Test func theFirstBlockingReasonIsReported() {
        let items = [
            Item(seq: 1, state: .pending, operation: .create, target: "Patient/l1"),
            Item(seq: 2, state: .conflict, operation: .update, target: "Condition/c1"),
            Item(
                seq: 3, state: .pending, operation: .update, target: "Condition/c1", after: 2,
                references: ["Patient/l1"]),
        ]
        let result = ReplayPlan.plan(items, onServer: Self.nothingOnServer)
        #expect(result.waiting[3] == .earlierChange(seq: 2, state: .conflict))
    }

    @Test func anEmptyOutboxHasNothingToDo() {
        let result = ReplayPlan.plan([], onServer: Self.nothingOnServer)
        #expect(result.ready.isEmpty)
        #expect(result.waiting.isEmpty)
    }

    @Test(arguments: [
        (
            ReplayPlan.Wait.earlierChange(seq: 4, state: .parked),
            "waits for change #4 of the same record (parked)"
        ),
        (
            ReplayPlan.Wait.reference(target: "Patient/0b4e-local", seq: 9, state: .pending),
            "waits for #9, the creation of the Patient it references (pending)"
        ),
        (
            ReplayPlan.Wait.droppedReference(target: "Practitioner/abc"),
            "references a Practitioner that was created and deleted locally"
        ),
    ])
    func descriptionsAreReadableAndNameNoID(wait: ReplayPlan.Wait, text: String) {
        #expect(wait.description == text)
        #expect(!wait.description.contains("0b4e-local"))
        #expect(!wait.description.contains("abc"))
    }
}
