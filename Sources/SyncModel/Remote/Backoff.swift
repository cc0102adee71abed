import Foundation

/// Exponential backoff with full jitter, honouring the server's `Retry-After`, capped.
///
/// A pure value: the caller supplies the random draw, so the schedule is testable.
public struct Backoff: Sendable, Equatable {
    public var base: Double
    public var cap: Double
    public var maxAttempts: Int

    public init(base: Double = 0.5, cap: Double = 60, maxAttempts: Int = 8) {
        self.base = base
        self.cap = cap
        self.maxAttempts = maxAttempts
    }

    /// Seconds to wait before retry number `attempt` (1 for the first retry), or nil when
    /// no retry is left. `unit` is a uniform draw in [0, 1). A `Retry-After` is a floor:
    /// the wait is never shorter, but also capped at `max(cap, retryAfter)` so a server can
    /// ask for long pauses.
    public func delay(attempt: Int, retryAfter: Double?, unit: Double) -> Double? {
        guard attempt < maxAttempts else { return nil }
        let exponent = min(Double(attempt - 1), 30)
        let ceiling = min(cap, base * pow2(exponent))
        let jittered = ceiling * min(max(unit, 0), 1)
        if let retryAfter, retryAfter >= 0 {
            return max(retryAfter, jittered)
        }
        return jittered
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP-date, relative to `now`
/// (seconds since 1970, the server's `Date` when known).
public enum RetryAfter {
    public static func seconds(_ header: String?, now: Double) -> Double? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if let s = Double(header), s >= 0 { return min(s, 86_400) }
        if let date = HTTPDate.parse(header) { return max(0, min(date - now, 86_400)) }
        return nil
    }
}
