/// What replay does with a local change once it has read the server's current version of
/// the target: the decision table of reconciliation. The reconciler reads, calls
/// ``decide(base:local:remote:policy:)``, then executes the answer; nothing here does I/O.
///
/// `local` and `remote` are resources (`.null` for deleted or absent), `base` the server
/// version the local edit started from (nil when unknown). `meta` is ignored throughout.
///
/// | local vs remote | base vs remote    | policy        | decision                                  |
/// |-----------------|-------------------|---------------|-------------------------------------------|
/// | equal           | any               | any           | `alreadyThere` (a lost answer, the same edit twice) |
/// | differ          | equal             | any           | `write(local)`, or `delete` for a local delete |
/// | differ          | differ or unknown | remote-wins   | `discard`                                 |
/// | differ          | differ or unknown | local-wins    | `write(local)` / `delete`                 |
/// | differ          | differ or unknown | manual        | `conflict` (the whole resource)           |
/// | differ          | differ or unknown | merge         | ``ThreeWayMerge``: `mergeThenWrite(merged)`, `alreadyThere` when the merge is the remote, or `conflict` |
///
/// A write over a remote that no longer exists is a re-create (`write` with no version to
/// match); a local delete whose remote is already gone is `alreadyThere`.
public enum RemoteDecision: Equatable, Sendable {
    /// The server already holds the local change: close the entry without writing.
    case alreadyThere
    /// Write the local version over the server's.
    case write(JSONValue)
    /// Write the three-way merge of local and remote changes.
    case mergeThenWrite(JSONValue)
    /// Delete the server's version.
    case delete
    /// The versions cannot be reconciled without a person: to the review queue.
    case conflict([MergeConflict])
    /// The policy keeps the server's version; the local change is closed as discarded.
    case discard

    public static func decide(base: JSONValue?, local: JSONValue, remote: JSONValue, policy: ConflictPolicy)
        -> RemoteDecision
    {
        let base = base.map(withoutMeta)
        let mine = withoutMeta(local)
        let remote = withoutMeta(remote)
        if mine == remote { return .alreadyThere }
        if let base, base == remote { return written(local) }
        switch policy {
        case .remoteWins:
            return .discard
        case .localWins:
            return written(local)
        case .manual:
            return .conflict([MergeConflict(path: "", base: base, local: mine, remote: remote)])
        case .merge:
            switch ThreeWayMerge.merge(base: base ?? .null, local: mine, remote: remote) {
            case .merged(let merged):
                if merged == remote { return .alreadyThere }
                return merged == .null ? .delete : .mergeThenWrite(merged)
            case .conflicts(let found):
                return .conflict(found)
            }
        }
    }

    private static func written(_ local: JSONValue) -> RemoteDecision {
        local == .null ? .delete : .write(local)
    }

    private static func withoutMeta(_ value: JSONValue) -> JSONValue {
        guard case .object(let object) = value else { return value }
        return .object(ResourceEdits.withoutMeta(object))
    }
}
