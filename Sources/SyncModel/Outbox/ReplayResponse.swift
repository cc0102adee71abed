/// What a server's answer to a replayed write means for the queued change.
public enum ReplayResponse: Equatable, Sendable {
    /// Written (200, 201, 204).
    case written
    /// The version moved on (412, and 409 which some servers send for version clashes).
    case versionChanged
    /// The target no longer exists (404, 410).
    case gone
    /// The server refuses the change itself (400, 405, 413, 422, …): park it.
    case rejected
    /// Not the change's fault (401, 403, 429 after retries, 5xx): stop and try again later.
    case stop

    public static func classify(_ status: Int) -> ReplayResponse {
        switch status {
        case 200, 201, 204: .written
        case 409, 412: .versionChanged
        case 404, 410: .gone
        case 401, 403, 407, 408, 429: .stop
        case 400..<500: .rejected
        default: .stop
        }
    }
}
