import Dispatch
import SyncModel
import Synchronization

/// Group commit: items handed in while a commit is running wait and go together in the next
/// one, so concurrent readers share one fsync'd transaction instead of queueing for one each.
///
/// Callers suspend (no thread is held) until their item's commit is done, and learn its
/// outcome: when a commit fails, every item in it fails. Commits run one at a time, in
/// arrival order, on a queue of their own.
final class GroupCommit<Item: Sendable>: Sendable {
    private struct Waiter {
        var items: [Item]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var waiting: [Waiter] = []
        var committing = false
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let commit: @Sendable ([Item]) throws -> Void
    private let queued: (@Sendable (_ waiting: Int) -> Void)?

    /// - Parameters:
    ///   - commit: writes a batch durably, or throws.
    ///   - queued: told how many items wait after each one is handed in (for tests).
    init(
        label: String, queued: (@Sendable (_ waiting: Int) -> Void)? = nil,
        commit: @escaping @Sendable ([Item]) throws -> Void
    ) {
        self.queue = DispatchQueue(label: label)
        self.commit = commit
        self.queued = queued
    }

    /// Returns once `item` is committed; throws the commit's error.
    func submit(_ item: Item) async throws {
        try await submit([item])
    }

    /// Returns once `items` are committed, together and in order; throws the commit's error.
    func submit(_ items: [Item]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (lead, waiting) = state.withLock { state in
                state.waiting.append(Waiter(items: items, continuation: continuation))
                if state.committing { return (false, state.waiting.count) }
                state.committing = true
                return (true, state.waiting.count)
            }
            queued?(waiting)
            if lead { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = state.withLock { state in
                let batch = state.waiting
                state.waiting = []
                if batch.isEmpty { state.committing = false }
                return batch
            }
            if batch.isEmpty { return }
            let outcome = Result { try commit(batch.flatMap(\.items)) }
            for waiter in batch { waiter.continuation.resume(with: outcome) }
        }
    }
}
