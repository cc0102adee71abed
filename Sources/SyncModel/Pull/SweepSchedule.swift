import Crypto
import Foundation

/// When a practice's sweep (the full id listing that finds deletions) is due. Sweeps fall on
/// a grid of the sweep interval shifted by a phase of the practice's own (from its replica's
/// id): a fleet's sweeps are spread over the interval, never aligned by restarts; and a slot
/// missed during an outage is not owed at the moment everyone comes back (the next slot after
/// the return is, a practice-specific time within one interval).
public enum SweepSchedule {
    /// A stable phase in [0, 1) from a per-replica value.
    public static func phase(of seed: String) -> Double {
        let digest = SHA256.hash(data: Data(seed.utf8))
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        return Double(value >> 11) / Double(1 << 53)
    }

    /// Whether a sweep is due at `now`: a slot of the grid passed since the last sweep, and
    /// since `notBefore` (when the EHR came back after an outage). Interval 0: every cycle.
    /// Never swept: due.
    public static func isDue(
        lastSweep: Double?, now: Double, interval: Double, phase: Double, notBefore: Double? = nil
    ) -> Bool {
        guard interval > 0 else { return true }
        guard let last = lastSweep else { return true }
        let from = max(last, notBefore ?? last)
        return slot(now, interval: interval, phase: phase) > slot(from, interval: interval, phase: phase)
    }

    static func slot(_ time: Double, interval: Double, phase: Double) -> Double {
        ((time - phase * interval) / interval).rounded(.down)
    }
}
