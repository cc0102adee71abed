/// The result of checking every row of the replica.
public struct VerifyReport: Sendable, Equatable, Codable {
    /// SQLite's own `PRAGMA integrity_check` verdict ("ok" when sound).
    public var sqlite: String
    public var rowsChecked = 0
    /// Live rows stored before outlines that the daemon's background upgrade has not reached.
    public var rowsWithoutOutline = 0
    /// Rows whose seal failed, by type and position (never content).
    public var failures: [String] = []
    /// What the row-set digests found (a row deleted, an older version put back, a table
    /// rolled back), in words without content; nil from daemons before row-set integrity.
    public var rowSetProblems: [String]?

    public init(sqlite: String, rowsChecked: Int = 0, rowsWithoutOutline: Int = 0, failures: [String] = []) {
        self.sqlite = sqlite
        self.rowsChecked = rowsChecked
        self.rowsWithoutOutline = rowsWithoutOutline
        self.failures = failures
    }

    public var ok: Bool { sqlite == "ok" && failures.isEmpty && (rowSetProblems ?? []).isEmpty }
}
