import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncServer
import SyncStore
import Synchronization

/// The shell around ``OutageStateMachine``: feeds it request outcomes with the wall clock,
/// logs every transition with its evidence, and answers what status shows.
final class OutageMonitor: Sendable {
    private let machine: Mutex<OutageStateMachine>
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
        machine = Mutex(OutageStateMachine(since: Date().timeIntervalSince1970, evidence: "started"))
    }

    func record(_ event: OutageStateMachine.Event) {
        let transition = machine.withLock { $0.handle(event, now: Date().timeIntervalSince1970) }
        guard let t = transition else { return }
        let level: Logger.Level = t.to == .online ? .notice : .warning
        logger.log(
            level: level, "EHR state changed",
            metadata: ["from": "\(t.from.rawValue)", "to": "\(t.to.rawValue)", "evidence": "\(t.evidence)"])
    }

    var state: OutageStateMachine.State { machine.withLock { $0.state } }

    /// Queued local changes may be replayed (online, confirmed after any outage).
    var replayAllowed: Bool { machine.withLock { $0.replayAllowed } }

    /// Since when the EHR has been failing (degraded, outage or recovering), else nil.
    var failingSince: Double? {
        machine.withLock { m in [.degraded, .outage, .recovering].contains(m.state) ? m.since : nil }
    }

    var evidence: String { machine.withLock { $0.evidence } }

    func nextProbeDelay(attempt: Int) -> Double {
        machine.withLock { $0.nextProbeDelay(attempt: attempt, unit: Double.random(in: 0..<1)) }
    }
}
