import Foundation
import Hummingbird
public import Logging
import Synchronization

/// What the web viewer's banner says: the EHR's state and the data's age.
public struct ViewerBanner: Sendable, Equatable {
    /// `online`, `degraded`, `outage`, `recovering`, `paused`, `starting`, `initial-sync`.
    public var state: String
    /// Since when the EHR has been failing (UTC instant), when it is.
    public var failingSince: String?
    /// Server time the local copy is complete up to.
    public var dataAsOf: String?
    /// Local changes not yet on the EHR, and conflicts awaiting review.
    public var unsent: Int
    public var conflicts: Int

    public init(state: String, failingSince: String?, dataAsOf: String?, unsent: Int, conflicts: Int) {
        self.state = state
        self.failingSince = failingSince
        self.dataAsOf = dataAsOf
        self.unsent = unsent
        self.conflicts = conflicts
    }
}

/// The staff web viewer: server-rendered pages (login, patient search, summary, print views,
/// downtime entry form) on the local API's listener, in French and English.
public final class WebViewer: Sendable {
    public struct Dependencies: Sendable {
        public var replica: Replica
        /// Queues a downtime entry (as the signed-in account).
        public var enqueue: @Sendable (LocalChange) throws(OutboxError) -> QueuedChange
        /// Called after an entry was queued.
        public var queued: @Sendable () -> Void
        public var banner: @Sendable () -> ViewerBanner
        public var access: AccessLog
        public var sessions: SessionStore

        public init(
            replica: Replica, enqueue: @escaping @Sendable (LocalChange) throws(OutboxError) -> QueuedChange,
            queued: @escaping @Sendable () -> Void, banner: @escaping @Sendable () -> ViewerBanner,
            access: AccessLog, sessions: SessionStore
        ) {
            self.replica = replica
            self.enqueue = enqueue
            self.queued = queued
            self.banner = banner
            self.access = access
            self.sessions = sessions
        }
    }

    let dependencies: Dependencies
    let throttle = Mutex(LoginThrottle())
    let logger: Logger

    public init(_ dependencies: Dependencies, logger: Logger) {
        self.dependencies = dependencies
        self.logger = logger
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in
            Response(status: .seeOther, headers: [.location: "/login"])
        }
    }
}
