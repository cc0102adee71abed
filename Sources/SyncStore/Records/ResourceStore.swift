import Foundation
import GRDB
import SyncModel
import Synchronization

/// The mirrored records: the EHR's latest version of each resource, sealed with AES-256-GCM,
/// found by blind indexes; tombstones; the in-memory
/// patient index built from the sealed Patients at open. Its concerns are in
/// `ResourceStore+Apply.swift` (ingest), `+Read`, `+Outline`, `+Verify`, `+Deletions` and
/// `PatientIndex.swift`.
///
/// Every row's seal binds its type, blinded id, versionId and tombstone flag as associated
/// data, so a row cannot be swapped, moved or flipped without detection.
public final class ResourceStore: Sendable, ReplicaDatabaseUser {
    let database: ReplicaDatabase
    let patients = Mutex(PatientIndex())
    /// Resume points commit in the same transaction as the page they follow.
    let syncState: SyncStateStore

    init(database: ReplicaDatabase, syncState: SyncStateStore) {
        self.database = database
        self.syncState = syncState
    }

    static func context(type: String, bid: Data, versionId: String?, deleted: Bool) -> Data {
        // "r1|type|" bid "|versionId|0 or 1", built in one buffer (once per row read).
        var d = Data(capacity: 8 + type.utf8.count + bid.count + (versionId?.utf8.count ?? 0))
        d.append(contentsOf: "r1|".utf8)
        d.append(contentsOf: type.utf8)
        d.append(UInt8(ascii: "|"))
        d.append(bid)
        d.append(UInt8(ascii: "|"))
        if let versionId { d.append(contentsOf: versionId.utf8) }
        d.append(UInt8(ascii: "|"))
        d.append(deleted ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        return d
    }
}
