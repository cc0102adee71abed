/// What replay does when the server's version changed since the local edit's base.
///
/// - `merge` (default): a FHIR-aware three-way merge; non-overlapping changes are written,
///   overlapping ones (and edit vs delete) go to the review queue.
/// - `remote-wins`: the local change is discarded (kept in the outbox for the record).
/// - `local-wins`: the local version overwrites the server's.
/// - `manual`: every concurrent change goes to the review queue, even when it would merge.
public enum ConflictPolicy: String, Sendable, Equatable, CaseIterable {
    case merge
    case remoteWins = "remote-wins"
    case localWins = "local-wins"
    case manual
}
