/// Why a local change was not queued, or an outbox command could not be carried out.
/// Messages never carry record content.
public enum OutboxError: Error, Equatable, CustomStringConvertible {
    /// The resource is unknown to the replica and to the outbox.
    case notFound(resourceType: String)
    /// The resource was deleted (locally or on the server).
    case gone(resourceType: String)
    /// The request body is not an acceptable resource.
    case invalid(String)
    /// No outbox entry with that number, or not in a state the command applies to.
    case noSuchEntry(Int64)
    case wrongState(seq: Int64, state: OutboxState, expected: String)
    case replica(ReplicaError)

    public var description: String {
        switch self {
        case .notFound(let type): "no \(type) with that id in the replica"
        case .gone(let type): "that \(type) was deleted"
        case .invalid(let reason): reason
        case .noSuchEntry(let seq): "no outbox entry #\(seq)"
        case .wrongState(let seq, let state, let expected): "entry #\(seq) is \(state.rawValue), not \(expected)"
        case .replica(let error): error.description
        }
    }
}
