import GRDB
import SyncModel

extension ReplicaError {
    /// The replica's error for whatever a database call threw: a full disk is named as such
    /// (the local API answers it with 507, status makes it critical), SQLite's other errors
    /// keep their text.
    static func from(_ error: any Error) -> ReplicaError {
        if let error = error as? ReplicaError { return error }
        if let error = error as? DatabaseError, error.resultCode == .SQLITE_FULL { return .diskFull }
        return .database(String(describing: error))
    }
}
