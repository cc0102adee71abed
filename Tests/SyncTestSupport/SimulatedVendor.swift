import Foundation
import Synchronization

/// A hosted EHR with a capacity, as the fault proxy plays it in front of sekmet (`make
/// bench-fleet`, the fleet tests): it admits `capacity` requests a second, in order; a request
/// that must queue is held (latency grows as the queue fills); past `maxQueue` seconds of queue
/// it is answered 429 or 503 with a Retry-After, without reaching the server.
public final class SimulatedVendor: Sendable {
    public enum Rejection: String, Sendable, CaseIterable {
        /// 429 Too Many Requests.
        case tooManyRequests = "429"
        /// 503 Service Unavailable.
        case unavailable = "503"
    }

    public let capacity: Double
    public let maxQueue: Double
    public let rejection: Rejection
    public let retryAfter: Int
    private let started = ContinuousClock.now
    private let state = Mutex(State())

    struct State {
        var nextFree = 0.0
        var admitted = 0
        var rejected = 0
        /// Requests offered in each second since the start.
        var offered: [Int] = []
    }

    public init(capacity: Double, maxQueue: Double = 2, rejection: Rejection = .tooManyRequests, retryAfter: Int = 2) {
        self.capacity = capacity
        self.maxQueue = maxQueue
        self.rejection = rejection
        self.retryAfter = retryAfter
    }

    /// The rule for ``FaultProxy/setPersonality(_:)``.
    public var rule: @Sendable (ProxyRequest) -> FaultMode? {
        { [self] _ in admit() }
    }

    var now: Double {
        let elapsed = started.duration(to: .now)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    func admit() -> FaultMode? {
        let now = self.now
        return state.withLock { s in
            let second = Int(now)
            if s.offered.count <= second { s.offered += Array(repeating: 0, count: second - s.offered.count + 1) }
            s.offered[second] += 1
            let slot = max(s.nextFree, now)
            let wait = slot - now
            if wait > maxQueue {
                s.rejected += 1
                return .status(rejection == .tooManyRequests ? 429 : 503, retryAfter: retryAfter)
            }
            s.nextFree = slot + 1 / capacity
            s.admitted += 1
            let ms = Int(wait * 1000)
            return ms > 0 ? .latency(milliseconds: ms) : nil
        }
    }

    public var admitted: Int { state.withLock { $0.admitted } }
    public var rejected: Int { state.withLock { $0.rejected } }

    /// Requests answered 429/503 ÷ all requests.
    public var rejectedShare: Double {
        state.withLock { s in
            let all = s.admitted + s.rejected
            return all == 0 ? 0 : Double(s.rejected) / Double(all)
        }
    }

    /// The highest number of requests offered in one second, from `after` seconds on.
    public func peakOffered(after: Int = 0) -> Int {
        state.withLock { $0.offered.dropFirst(after).max() ?? 0 }
    }

    /// Seconds since the vendor started.
    public var elapsed: Double { now }
}
