/// A token bucket: at most `rate` requests a second on average, bursts up to `burst`.
/// Pure: `now` is passed in.
public struct TokenBucket: Sendable, Equatable {
    public var rate: Double
    public var burst: Double
    var tokens: Double
    var last: Double?

    public init(rate: Double, burst: Double? = nil) {
        self.rate = rate
        self.burst = burst ?? max(1, rate)
        self.tokens = self.burst
    }

    /// Takes a token; returns how long to wait (0 when one was available). The token is
    /// reserved either way, so callers just sleep for the returned time.
    public mutating func take(now: Double) -> Double {
        if let last { tokens = min(burst, tokens + (now - last) * rate) }
        last = now
        tokens -= 1
        return tokens >= 0 ? 0 : -tokens / rate
    }
}
