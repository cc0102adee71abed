/// The incremental-sync cursor: a **server** instant, never the local clock.
///
/// Each cycle asks for changes since the cursor minus an overlap window (so clock skew
/// between the server's nodes and entries committed out of order are not missed); the
/// replica's idempotent upserts make re-reading the overlap harmless. After a complete
/// cycle the cursor moves to the server time taken at the cycle's start.
public struct SyncCursor: Sendable, Equatable {
    /// Seconds since 1970, server time.
    public var serverTime: Double

    public init(serverTime: Double) { self.serverTime = serverTime }

    public init?(_ text: String) {
        guard let t = FHIRInstant.parse(text) else { return nil }
        serverTime = t
    }

    /// The `_since` value for the next cycle, in UTC with `Z` (servers compare it as text
    /// more often than they should).
    public func since(overlap: Double) -> String {
        FHIRInstant.format(serverTime - overlap)
    }

    public var text: String { FHIRInstant.format(serverTime) }

    /// The server time a cycle started at: the response's `Date` header, else the Bundle's
    /// `meta.lastUpdated`; nil when neither is usable (then the cursor does not move).
    ///
    /// Never later than `localNow` (this machine's clock when the cycle started), when given: a
    /// `Date` header a day ahead (a wrong server clock, a proxy) would otherwise move the cursor
    /// past changes not yet read, which are then never read. A cursor too early only re-reads
    /// what the replica already has (unchanged versions are skipped).
    public static func serverTime(dateHeader: String?, bundleLastUpdated: String?, localNow: Double? = nil) -> Double? {
        let server = dateHeader.flatMap(HTTPDate.parse) ?? bundleLastUpdated.flatMap(FHIRInstant.parse)
        guard let server, let localNow else { return server }
        return min(server, localNow)
    }

    /// How far the server's `Date` is ahead of this machine's clock, in seconds, when more than
    /// `tolerance` (for a warning: one of the two clocks is wrong).
    public static func clockSkew(dateHeader: String?, localNow: Double, tolerance: Double = 300) -> Double? {
        guard let server = dateHeader.flatMap(HTTPDate.parse), abs(server - localNow) > tolerance else { return nil }
        return server - localNow
    }
}
