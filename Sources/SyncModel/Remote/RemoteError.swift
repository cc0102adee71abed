/// Errors talking to the hosted EHR. Messages carry the route (resource type or operation),
/// never ids, query values or bodies.
public enum RemoteError: Error, Equatable, CustomStringConvertible {
    /// Retries exhausted on network errors, 5xx or 429.
    case unavailable(route: String, reason: String)
    /// The server answered with a status the caller cannot use.
    case status(route: String, code: Int)
    /// The server will not serve this request this way (400, 403, 404, 405, 422, 501 on a
    /// listing), with its reason: another way is tried, the rest goes on.
    case refused(route: String, code: Int, reason: String)
    /// The server sent something that is not what FHIR promises.
    case badResponse(route: String, reason: String)
    /// A link from the server points at another origin; it is not followed with our
    /// credentials.
    case foreignOrigin(route: String)
    /// Shutdown interrupted the request.
    case cancelled

    public var description: String {
        switch self {
        case .unavailable(let route, let reason): "EHR unavailable (\(route)): \(reason)"
        case .status(let route, let code): "EHR answered HTTP \(code) (\(route))"
        case .refused(let route, let code, let reason): "EHR refused \(route) (HTTP \(code)): \(reason)"
        case .badResponse(let route, let reason): "unusable response from the EHR (\(route)): \(reason)"
        case .foreignOrigin(let route): "the EHR pointed to another server (\(route)); not followed"
        case .cancelled: "cancelled by shutdown"
        }
    }
}
