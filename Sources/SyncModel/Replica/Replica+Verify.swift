import Foundation
import GRDB

/// The result of checking every row of the replica.
public struct VerifyReport: Sendable, Equatable, Codable {
    /// SQLite's own `PRAGMA integrity_check` verdict ("ok" when sound).
    public var sqlite: String
    public var rowsChecked = 0
    /// Rows whose seal failed, by type and position (never content).
    public var failures: [String] = []

    public var ok: Bool { sqlite == "ok" && failures.isEmpty }
}

extension Replica {
    /// Runs SQLite's integrity check and opens every record and held change.
    public func verify() throws(ReplicaError) -> VerifyReport {
        try read { db in
            let sqlite = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
            var report = VerifyReport(sqlite: sqlite)
            let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.columns) FROM resource")
            while let row = try cursor.next() {
                report.rowsChecked += 1
                do {
                    _ = try decode(row, id: nil)
                } catch let error as ReplicaError {
                    report.failures.append(error.description)
                }
            }
            return report
        }
    }
}
