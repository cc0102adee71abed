import Foundation
import GRDB
public import SyncModel

extension ResourceStore {
    /// Runs SQLite's integrity check and opens every record and held change.
    public func verify() throws(ReplicaError) -> VerifyReport {
        try read { db in
            let sqlite = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
            var report = VerifyReport(sqlite: sqlite)
            let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.columns) FROM resource")
            while let row = try cursor.next() {
                report.rowsChecked += 1
                do {
                    let (stored, outline) = try decodeWithOutline(row, id: nil)
                    if outline == nil, !stored.deleted { report.rowsWithoutOutline += 1 }
                    try checkOutline(outline, of: stored, row: row[0])
                } catch let error as ReplicaError {
                    report.failures.append(error.description)
                }
            }
            return report
        }
    }

    /// The outline sealed with a body, when it has one, says what the body's JSON says.
    private func checkOutline(_ encoded: Data?, of stored: StoredResource, row: Int64) throws(ReplicaError) {
        guard let encoded else { return }
        let expected = try? stored.json.withUnsafeBytes { raw throws(JSONSlicer.Error) in try ResourceOutline(json: raw)
        }
        guard let expected, ResourceOutline(encoded: encoded) == expected else {
            throw .integrity(resourceType: stored.resourceType, row: row)
        }
    }
}
