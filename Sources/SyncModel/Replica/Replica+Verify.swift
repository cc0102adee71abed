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
            let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.columns), outline FROM resource")
            while let row = try cursor.next() {
                report.rowsChecked += 1
                do {
                    let stored = try decode(row, id: nil)
                    try checkOutline(row, stored)
                } catch let error as ReplicaError {
                    report.failures.append(error.description)
                }
            }
            return report
        }
    }

    /// A live row's outline, when it has one, opens beside its body and says what the body says.
    private func checkOutline(_ row: Row, _ stored: StoredResource) throws(ReplicaError) {
        guard !stored.deleted, let sealed: Data = row[8] else { return }
        let expected = try? stored.json.withUnsafeBytes { raw throws(JSONSlicer.Error) in try ResourceOutline(json: raw)
        }
        guard
            let plain = openOutline(
                sealed, type: stored.resourceType, bid: row[2], versionId: stored.versionId,
                contentHash: stored.contentHash),
            ResourceOutline(encoded: plain) == expected
        else { throw .integrity(resourceType: stored.resourceType, row: row[0]) }
    }
}
