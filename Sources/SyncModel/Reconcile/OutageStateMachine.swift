/// Whether the hosted EHR is reachable, decided from request outcomes; pure (the caller
/// passes `now`, seconds on any monotonic or wall clock, and the random draw for jitter).
///
/// ```
/// online ──failure──▶ degraded ──N failures, or failures spanning ≥ T s──▶ outage
///   ▲                    │ success                                          │ probeSucceeded
///   └────────────────────┘                                                  ▼
///   └──────────── M consecutive successes ───────────────────────────── recovering
///                                                      (any failure: back to outage)
/// pause (any state) ──▶ paused ──resume──▶ recovering
/// ```
///
/// Only `probeSucceeded` (the caller's health probe: `/metadata` and one cheap search) leaves
/// an outage; successes of ordinary requests during an outage do not. Successes counted
/// towards M are those received while recovering. Replay of queued changes is allowed only
/// when online.
public struct OutageStateMachine: Sendable, Equatable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case online
        case degraded
        case outage
        case recovering
        case paused
    }

    public enum Failure: Sendable, Equatable {
        case timeout
        case connectionRefused
        case serverError(Int)
        case unavailable(retryAfter: Double?)
        case tooManyRequests(retryAfter: Double?)
    }

    public enum Event: Sendable, Equatable {
        case succeeded
        case failed(Failure)
        case probeSucceeded
        case probeFailed(Failure)
        case pause
        case resume
    }

    /// A change of state, with why (counts, HTTP statuses, durations; never patient data).
    public struct Transition: Sendable, Equatable, Codable {
        public var from: State
        public var to: State
        public var evidence: String
        public var at: Double

        public init(from: State, to: State, evidence: String, at: Double) {
            self.from = from
            self.to = to
            self.evidence = evidence
            self.at = at
        }
    }

    /// Consecutive failures that turn degraded into outage (N).
    public var failuresToOutage: Int
    /// Seconds from the first to the latest consecutive failure that turn degraded into outage (T).
    public var failureWindow: Double
    /// Consecutive successes while recovering that confirm online (M).
    public var successesToRecover: Int
    /// The schedule of health probes during an outage.
    public var probeBackoff: Backoff

    public private(set) var state: State
    /// When the current state began.
    public private(set) var since: Double
    /// Why the current state began (the evidence of the transition into it).
    public private(set) var evidence: String
    /// Consecutive failures (requests or probes) since the last success.
    public private(set) var consecutiveFailures = 0
    /// When the first of the consecutive failures happened.
    public private(set) var firstFailureAt: Double?
    /// Consecutive successes while recovering.
    public private(set) var consecutiveSuccesses = 0
    /// The Retry-After (seconds) of the latest server response that failed; a timeout or a
    /// refused connection keeps it (no new word from the server), any success clears it.
    public private(set) var lastRetryAfter: Double?

    public init(
        failuresToOutage: Int = 3, failureWindow: Double = 60, successesToRecover: Int = 2,
        probeBackoff: Backoff = Backoff(base: 1, cap: 300, maxAttempts: .max),
        state: State = .online, since: Double = 0, evidence: String = "started"
    ) {
        self.failuresToOutage = max(1, failuresToOutage)
        self.failureWindow = failureWindow
        self.successesToRecover = max(1, successesToRecover)
        self.probeBackoff = probeBackoff
        self.state = state
        self.since = since
        self.evidence = evidence
    }

    /// True only when online: queued local changes may be replayed.
    public var replayAllowed: Bool { state == .online }

    /// Feeds one outcome; returns the transition when the state changes, else nil.
    public mutating func handle(_ event: Event, now: Double) -> Transition? {
        switch event {
        case .pause:
            guard state != .paused else { return nil }
            return move(to: .paused, now: now, evidence: "paused by operator")
        case .resume:
            guard state == .paused else { return nil }
            resetCounters()
            return move(to: .recovering, now: now, evidence: "resumed by operator; health probe required")
        case .succeeded:
            return success(probe: false, now: now)
        case .probeSucceeded:
            return success(probe: true, now: now)
        case .failed(let failure):
            return failed(failure, probe: false, now: now)
        case .probeFailed(let failure):
            return failed(failure, probe: true, now: now)
        }
    }

    /// Seconds to wait before health probe number `attempt` (1 for the first): full jitter
    /// (`unit` is a uniform draw in [0, 1)), capped, never shorter than the last Retry-After.
    /// Probes never run out: past the schedule's last attempt the capped delay repeats.
    public func nextProbeDelay(attempt: Int, unit: Double) -> Double {
        var schedule = probeBackoff
        schedule.maxAttempts = .max
        return schedule.delay(attempt: max(1, attempt), retryAfter: lastRetryAfter, unit: unit) ?? schedule.cap
    }

    // MARK: Transitions

    private mutating func success(probe: Bool, now: Double) -> Transition? {
        switch state {
        case .paused:
            return nil
        case .online:
            resetCounters()
            return nil
        case .degraded:
            let failures = consecutiveFailures
            resetCounters()
            return move(
                to: .online, now: now,
                evidence:
                    "\(probe ? "probe" : "request") succeeded after \(Self.count(failures, "failure", "failures"))")
        case .outage:
            guard probe else { return nil }
            resetCounters()
            return move(to: .recovering, now: now, evidence: "health probe succeeded")
        case .recovering:
            consecutiveFailures = 0
            firstFailureAt = nil
            lastRetryAfter = nil
            consecutiveSuccesses += 1
            guard consecutiveSuccesses >= successesToRecover else { return nil }
            let successes = consecutiveSuccesses
            consecutiveSuccesses = 0
            return move(
                to: .online, now: now, evidence: Self.count(successes, "consecutive success", "consecutive successes"))
        }
    }

    private mutating func failed(_ failure: Failure, probe: Bool, now: Double) -> Transition? {
        guard state != .paused else { return nil }
        consecutiveSuccesses = 0
        consecutiveFailures += 1
        let first = firstFailureAt ?? now
        firstFailureAt = first
        switch failure {
        case .serverError: lastRetryAfter = nil
        case .unavailable(let retryAfter), .tooManyRequests(let retryAfter): lastRetryAfter = retryAfter
        case .timeout, .connectionRefused: break
        }
        let what = (probe ? "health probe failed: " : "") + Self.describe(failure)
        switch state {
        case .paused, .outage:
            return nil
        case .recovering:
            return move(to: .outage, now: now, evidence: "failure while recovering (\(what))")
        case .online, .degraded:
            let span = now - first
            if consecutiveFailures >= failuresToOutage || (consecutiveFailures > 1 && span >= failureWindow) {
                return move(
                    to: .outage, now: now,
                    evidence:
                        "\(Self.count(consecutiveFailures, "consecutive failure", "consecutive failures")) over \(Self.seconds(span)) "
                        + "(last: \(what))")
            }
            guard state == .online else { return nil }
            return move(to: .degraded, now: now, evidence: "first failure (\(what))")
        }
    }

    private mutating func resetCounters() {
        consecutiveFailures = 0
        firstFailureAt = nil
        consecutiveSuccesses = 0
        lastRetryAfter = nil
    }

    private mutating func move(to next: State, now: Double, evidence: String) -> Transition {
        let transition = Transition(from: state, to: next, evidence: evidence, at: now)
        state = next
        since = now
        self.evidence = evidence
        return transition
    }

    // MARK: Evidence text (no patient data: statuses, counts, durations only)

    static func describe(_ failure: Failure) -> String {
        switch failure {
        case .timeout: return "timeout"
        case .connectionRefused: return "connection refused"
        case .serverError(let status): return "HTTP \(status)"
        case .unavailable(let retryAfter): return "HTTP 503" + retryAfterText(retryAfter)
        case .tooManyRequests(let retryAfter): return "HTTP 429" + retryAfterText(retryAfter)
        }
    }

    private static func retryAfterText(_ retryAfter: Double?) -> String {
        guard let retryAfter else { return "" }
        return ", Retry-After \(seconds(retryAfter))"
    }

    static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "?s" }
        let tenths = (value * 10).rounded()
        if tenths.truncatingRemainder(dividingBy: 10) == 0, abs(tenths) < 1e15 {
            return "\(Int(tenths / 10))s"
        }
        return "\(tenths / 10)s"
    }

    private static func count(_ n: Int, _ singular: String, _ plural: String) -> String {
        "\(n) \(n == 1 ? singular : plural)"
    }
}
