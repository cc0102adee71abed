import Foundation
import SyncModel

#if canImport(Glibc)
    import Glibc
#endif

/// The state directory's disk: a write that fails for lack of space makes status critical
/// (``StorageStatus``) until a write succeeds again. Nothing needs a restart: SQLite rolls the
/// failed transaction back whole, the sync loop retries with its backoff, the local API
/// answers 507 meanwhile.
extension Daemon {
    /// Records the outcome of a write: a full disk (from the sync loop, a local change, an
    /// access record) or a success (nil) that clears it.
    func noteStorage(_ error: (any Error)?) {
        guard let error else {
            let was = diskFullSince.withLock { since -> Double? in
                defer { since = nil }
                return since
            }
            if was != nil { logger.notice("the state directory has room again: writes go on") }
            return
        }
        guard Self.isDiskFull(error) else { return }
        let first = diskFullSince.withLock { since -> Bool in
            if since != nil { return false }
            since = Date().timeIntervalSince1970
            return true
        }
        if first {
            logger.critical(
                "the disk holding the replica is full: the copy is stopped and local changes are refused until space is freed",
                metadata: ["free_bytes": "\(Self.freeBytes(config.stateDirectory).map(String.init) ?? "unknown")"])
        }
    }

    /// Whether an error (the replica's, as the puller passes it on, or the outbox's) is a full disk.
    static func isDiskFull(_ error: any Error) -> Bool {
        if case .diskFull? = error as? ReplicaError { return true }
        if case .replica(.diskFull)? = error as? OutboxError { return true }
        return false
    }

    /// Free bytes on the file system of `path` (for the unprivileged user), or nil.
    static func freeBytes(_ path: String) -> Int64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }
}
