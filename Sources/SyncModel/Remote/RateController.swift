import Foundation

/// The daemon's request rate to the EHR, adapted as TCP adapts its window: additive increase
/// while requests succeed within a latency target, multiplicative decrease on 429, 503,
/// timeouts and latency well above the recent minimum (the server queueing), a slow start
/// after an outage, the server's `Retry-After` as a floor. One budget per daemon: replay and
/// catch-up pulls draw on the same controller.
///
/// A pure value: the caller passes the time and the outcomes, so convergence, reactions and
/// oscillation are unit-tested on a fake clock. ``Policy/fixed`` is the former behaviour (a
/// token bucket at the configured rate), kept for comparison and for servers whose operators
/// ask for it.
public struct RateController: Sendable, Equatable {
    public enum Policy: String, Sendable, Equatable, CaseIterable {
        case adaptive, fixed
    }

    public struct Settings: Sendable, Equatable {
        public var policy: Policy = .adaptive
        /// Never fewer requests a second than this (no starvation; low enough that a whole
        /// fleet at its floor stays under a vendor's capacity).
        public var floor: Double = 0.05
        /// Never more requests a second than this (`[ehr] requests_per_second`).
        public var ceiling: Double = 20
        /// Where a slow start begins (a tenth of the ceiling unless set)...
        public var initial: Double = 2
        /// ...and where it begins again after an outage, lower: the whole fleet is coming back
        /// (a fortieth of the ceiling, at least 0.5 a second).
        public var restart: Double = 0.5
        /// Additive increase: requests a second gained per second of success...
        public var increase: Double = 0.1
        /// ...plus this share of the rate per second (a lone practice regains its pace in
        /// seconds; a fleet's aggregate grows by a bounded share of itself).
        public var growth: Double = 0.1
        /// Multiplicative decrease on congestion.
        public var decrease: Double = 0.7
        /// Latency above this many times the recent minimum is congestion...
        public var latencyFactor: Double = 4
        /// ...and only above this many seconds (fast answers never are); a write slower than
        /// `latencyCeiling` is queueing whatever the minimum (a minimum learnt while the server
        /// already queued is too high).
        public var latencyFloor: Double = 0.25
        public var latencyCeiling: Double = 0.5
        /// The longest `Retry-After` honoured as a floor (seconds).
        public var maxRetryAfter: Double = 600

        public init(
            policy: Policy = .adaptive, floor: Double = 0.05, ceiling: Double = 20, initial: Double? = nil,
            increase: Double = 0.1, growth: Double = 0.1, decrease: Double = 0.7, latencyFactor: Double = 4,
            latencyFloor: Double = 0.25, latencyCeiling: Double = 0.5
        ) {
            self.policy = policy
            self.floor = max(0.01, floor)
            self.ceiling = max(self.floor, ceiling)
            self.initial = min(max(initial ?? self.ceiling / 10, self.floor), self.ceiling)
            self.restart = min(max(0.5, self.floor, self.ceiling / 40), self.initial)
            self.increase = max(0, increase)
            self.growth = max(0, growth)
            self.decrease = min(max(decrease, 0.1), 0.95)
            self.latencyFactor = max(1.5, latencyFactor)
            self.latencyFloor = max(0, latencyFloor)
            self.latencyCeiling = max(self.latencyFloor, latencyCeiling)
        }
    }

    /// What became of one request.
    public enum Outcome: Sendable, Equatable {
        /// Answered (anything but 429 and 5xx) in `latency` seconds; nil for answers whose
        /// time says nothing about the server's queue (a page of 500 resources takes longer
        /// than a write whatever the load).
        case answered(latency: Double?)
        /// 429, 503 (or another 5xx): the server is overloaded; its `Retry-After` if any.
        case overloaded(retryAfter: Double?)
        /// No answer in time.
        case timeout
        /// Not reachable at all (connection refused, DNS): an outage, not congestion.
        case unreachable
    }

    public let settings: Settings
    /// The current rate (requests a second).
    public private(set) var rate: Double
    /// Below this, a success doubles the rate quickly (slow start); above, it grows additively.
    public private(set) var threshold: Double
    /// No request before this time (a `Retry-After`).
    public private(set) var notBefore: Double = 0
    /// The smallest recent latency (seconds), drifting up slowly so it follows the server.
    public private(set) var baseLatency: Double?
    /// Answers received, decaying with a one-second time constant: the delivered rate.
    var delivered = 0.0
    var deliveredAt: Double?
    /// When the rate was last decreased, and until when news belongs to that episode.
    var lastDecrease: Double?
    var holdUntil = -Double.infinity
    var lastSample: Double?
    /// When the last reserved request starts: the next one is `1 / rate` later, at the rate
    /// of the moment it is reserved (a rate that grew since applies at once).
    var lastStart: Double?
    var wasUnreachable = false
    /// When a request last had to wait for its slot: the rate, not the work, was the limit.
    var limitedAt = -Double.infinity
    /// When the rate last grew: growth is per second of success, not per answer (a rate of
    /// 0.1 a second must not jump with one answer).
    var lastGrowth: Double?

    public init(settings: Settings) {
        self.settings = settings
        switch settings.policy {
        case .adaptive:
            rate = settings.initial
            threshold = settings.ceiling
        case .fixed:
            rate = settings.ceiling
            threshold = settings.ceiling
        }
    }

    /// Whether the rate is still in its slow start.
    public var inSlowStart: Bool { settings.policy == .adaptive && rate < threshold }

    /// Reserves the next request: seconds to wait before sending it (0 = now). Requests are
    /// paced one every `1 / rate` seconds, never before a `Retry-After`. The fixed policy
    /// allows a second's burst after a pause (a token bucket); the adaptive one paces strictly
    /// (a fleet's bursts are what a recovering server cannot take).
    public mutating func delay(now: Double) -> Double {
        let interval = 1 / rate
        let burst = settings.policy == .fixed ? max(0, rate - 1) * interval : 0
        var start = max((lastStart ?? -Double.infinity) + interval, now - burst)
        start = max(start, notBefore)
        lastStart = start
        if start > now { limitedAt = now }
        return max(0, start - now)
    }

    /// Learns from one request's outcome.
    /// `sentAt`: when the request was sent. Congestion news from a request sent before the
    /// last decrease belongs to that decrease's episode (as TCP decreases once per window).
    public mutating func record(_ outcome: Outcome, now: Double, sentAt: Double? = nil) {
        guard settings.policy == .adaptive else {
            if case .overloaded(let retryAfter?) = outcome { honour(retryAfter, now: now) }
            return
        }
        switch outcome {
        case .answered(let latency):
            if let latency { observe(latency: latency, now: now) }
            deliver(now: now)
            wasUnreachable = false
            // Per second since the last growth (up to four: a slow rate's answers are rare).
            let dt = min(max(now - (lastGrowth ?? now), 0), 4)
            lastGrowth = now
            if let latency, isQueueing(latency) {
                congestion(now: now, sentAt: sentAt, queue: latency)
            } else if now - limitedAt > max(1, 2 / rate) {
                // Fewer requests than the rate allows: nothing learnt about a higher one.
            } else if rate < threshold {
                // Slow start: +50 % a second.
                rate = min(threshold, rate * pow(1.5, dt))
            } else if let latency, let base = baseLatency, latency <= 2 * base {
                // Answered as fast as ever: the server has room; probe faster (+50 % a second).
                rate = rate * pow(1 + 5 * settings.growth, dt) + settings.increase * dt
            } else {
                rate = rate * pow(1 + settings.growth, dt) + settings.increase * dt
            }
            rate = min(rate, settings.ceiling)
        case .overloaded(let retryAfter):
            if let retryAfter { honour(retryAfter, now: now) }
            congestion(now: now, sentAt: sentAt, queue: 0)
        case .timeout:
            congestion(now: now, sentAt: sentAt, queue: 0)
        case .unreachable:
            // An outage: start slow when it ends, as everyone else comes back too.
            if !wasUnreachable {
                wasUnreachable = true
                threshold = max(settings.restart, min(threshold, rate) * settings.decrease)
                rate = settings.restart
                lastGrowth = nil
            }
        }
    }

    mutating func deliver(now: Double) {
        if let at = deliveredAt { delivered *= exp(-max(now - at, 0)) }
        delivered += 1
        deliveredAt = now
    }

    /// Answers a second lately (the delivered rate).
    func deliveredRate(now: Double) -> Double {
        guard let at = deliveredAt else { return 0 }
        return delivered * exp(-max(now - at, 0))
    }

    /// Latency above the target: the server queues our requests.
    func isQueueing(_ latency: Double) -> Bool {
        guard let base = baseLatency else { return latency > settings.latencyCeiling }
        return latency > settings.latencyFloor
            && (latency > base * settings.latencyFactor || latency > settings.latencyCeiling)
    }

    mutating func observe(latency: Double, now: Double) {
        guard latency >= 0 else { return }
        if let base = baseLatency, let last = lastSample {
            // Drifts up 2 % a second, so a server that became slower for good is learnt.
            let drifted = base * (1 + 0.02 * min(max(now - last, 0), 60))
            baseLatency = min(drifted, latency)
        } else {
            baseLatency = latency
        }
        lastSample = now
    }

    /// One decrease per episode, as TCP decreases once per window: the answers to requests
    /// sent before the decrease (those that were in the server's queue with it) carry the
    /// same news and are not counted again, nor are answers before the queue seen then
    /// (`queue` seconds) can have drained; at least half a second apart.
    mutating func congestion(now: Double, sentAt: Double?, queue: Double) {
        if let sentAt, let last = lastDecrease, sentAt < last { return }
        if now < holdUntil { return }
        lastDecrease = now
        holdUntil = now + max(0.5, queue)
        // Multiplicatively, and at once down to what the server delivered lately when the rate
        // was far above it (a slow start's overshoot), never by more than three quarters.
        let delivered = deliveredRate(now: now)
        rate = max(settings.floor, min(rate * settings.decrease, max(delivered, rate * 0.25)))
        threshold = rate
    }

    mutating func honour(_ retryAfter: Double, now: Double) {
        notBefore = max(notBefore, now + min(max(retryAfter, 0), settings.maxRetryAfter))
    }
}

/// The wait before the first request after an outage: drawn over a window that grows with
/// the outage's length, so a fleet of daemons that lost the same EHR does not come back in
/// the same second (a few seconds after a blip, up to several minutes after days).
public enum ReconnectionJitter {
    /// The window (seconds) after an outage of `outage` seconds, at most `cap`.
    public static func window(outage: Double, cap: Double) -> Double {
        guard outage > 0, cap > 0 else { return 0 }
        return min(cap, max(3, outage.squareRoot()))
    }

    /// The wait: `unit` is a uniform draw in [0, 1).
    public static func wait(outage: Double, cap: Double, unit: Double) -> Double {
        window(outage: outage, cap: cap) * min(max(unit, 0), 1)
    }
}
