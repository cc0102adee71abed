import Dispatch
import Synchronization
import Testing

@testable import SyncModel
@testable import SyncStore

/// Group commit of audit records: what arrives during a commit goes in the next one, every
/// item once, in order; a failed commit fails every item in it.
@Suite struct GroupCommitTests {
    struct Failure: Error {}

    @Test func itemsArrivingDuringACommitShareTheNextOne() async throws {
        let batches = Mutex<[[Int]]>([])
        let firstEntered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let commits = GroupCommit<Int>(
            label: "test.group-commit",
            queued: { waiting in if waiting == 20 { release.signal() } },
            commit: { items in
                let first = batches.withLock { batches in
                    batches.append(items)
                    return batches.count == 1
                }
                if first {
                    firstEntered.signal()
                    release.wait()  // held until 20 more wait behind it
                }
            })
        async let lead: Void = commits.submit(0)
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                firstEntered.wait()
                continuation.resume()
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 1...20 { group.addTask { try await commits.submit(n) } }
            try await group.waitForAll()
        }
        try await lead
        let committed = batches.withLock { $0 }
        #expect(committed.count == 2)
        #expect(committed.first == [0])
        #expect(committed.last?.sorted() == Array(1...20))
    }

    @Test func aFailedCommitFailsItsItemsAndTheNextOneStillRuns() async throws {
        let calls = Mutex(0)
        let commits = GroupCommit<String>(label: "test.group-commit") { items in
            let n = calls.withLock { calls in
                calls += 1
                return calls
            }
            if n == 1 { throw Failure() }
        }
        await #expect(throws: Failure.self) { try await commits.submit("refused") }
        try await commits.submit("kept")
        #expect(calls.withLock { $0 } == 2)
    }
}
