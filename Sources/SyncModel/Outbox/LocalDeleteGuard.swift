/// Notices a burst of deletions queued locally (a script gone wrong, a stolen token, a
/// departing employee): beyond `threshold` deletions within `window` seconds, each further
/// one is queued but held for an administrator (parked with the reason; `syncctl outbox
/// retry N` releases it), as the pull holds a mass delete coming from the EHR. Pure value.
public struct LocalDeleteGuard: Sendable, Equatable {
    public var threshold: Int
    public var window: Double
    var recent: [Double] = []

    public init(threshold: Int = 100, window: Double = 600) {
        self.threshold = threshold
        self.window = window
    }

    /// Records one local deletion at `now`; true when it must be held.
    public mutating func shouldHold(now: Double) -> Bool {
        recent.removeAll { now - $0 >= window }
        recent.append(now)
        return threshold > 0 && recent.count > threshold
    }

    /// Why a held deletion waits, for `syncctl outbox`.
    public var reason: String {
        "held: more than \(threshold) deletions queued locally within \(Int(window / 60)) min; "
            + "an administrator checks them and releases each with `syncctl outbox retry N`"
    }
}
