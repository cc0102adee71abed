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
    public static func serverTime(dateHeader: String?, bundleLastUpdated: String?) -> Double? {
        if let date = dateHeader.flatMap(HTTPDate.parse) { return date }
        return bundleLastUpdated.flatMap(FHIRInstant.parse)
    }
}
