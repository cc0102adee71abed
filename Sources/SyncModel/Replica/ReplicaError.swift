/// Errors of the encrypted replica. Messages say what happened, to what, and what to do,
/// and never carry record content or identifiers.
public enum ReplicaError: Error, Equatable, CustomStringConvertible {
    /// The KEK does not unwrap this replica's data key.
    case wrongKey(source: String, path: String)
    /// A stored row failed authentication: it was altered, moved or swapped.
    case integrity(resourceType: String, row: Int64)
    /// A value in the replica's bookkeeping failed authentication.
    case corruptState(String)
    /// The state directory cannot be used.
    case unusableDirectory(path: String, reason: String)
    /// SQLite reported an error.
    case database(String)
    /// The operation cannot start now; the text says why and what to do.
    case refused(String)
    /// The disk holding the replica is full: the write was rolled back whole.
    case diskFull

    public var description: String {
        switch self {
        case .wrongKey(let source, let path):
            "the replica key from \(source) does not open the replica \(path) "
                + "(wrong key, or a key rotated since); the replica was not modified. "
                + "Point [key] at the key this replica was created with, or restore it from `syncctl key backup`."
        case .integrity(let type, let row):
            "integrity error: stored \(type) at row \(row) failed authentication "
                + "(altered, moved or replayed); it is not returned. Run `syncctl verify` and resync."
        case .corruptState(let what):
            "integrity error: replica bookkeeping \(what) failed authentication"
        case .unusableDirectory(let path, let reason):
            "cannot use the state directory \(path): \(reason)"
        case .database(let message):
            "replica database error: \(message)"
        case .refused(let reason):
            reason
        case .diskFull:
            "the disk holding the replica is full: nothing was written. Free space on it; ehr-syncd goes on by "
                + "itself once there is room"
        }
    }
}
