public import Foundation
public import SyncModel

/// What the engines need of the hosted EHR: requests answered in full, and NDJSON streamed.
///
/// ``FHIRClient`` is the real one (HTTP, rate limit, retries, credentials); tests run pull and
/// replay in-process against a scripted or in-memory server that conforms too, and against
/// sekmet-fhir through the real client in the integration tests.
public protocol FHIRTransport: Sendable {
    /// The server's origin (`scheme://host:port`): what credentials and attachment fetches
    /// are limited to.
    var origin: String { get }

    /// Resolves a path (relative to the base) or an absolute URL from the server.
    func url(_ pathOrURL: String) -> String

    /// Any request, retried where safe; returns the first answer that is neither 5xx nor 429,
    /// or throws ``RemoteError/unavailable(route:reason:)`` once retries are spent.
    func send(
        _ method: String, _ pathOrURL: String, accept: String, headers: [(String, String)], body: Data?,
        maxBytes: Int, sendCredentials: Bool, probe: Bool
    ) async throws(RemoteError) -> FHIRResponse

    /// Streams a response body line by line (NDJSON), `batchSize` lines at a time; returns the
    /// number of lines.
    func streamLines(
        _ pathOrURL: String, sendCredentials: Bool, maxLineBytes: Int, batchSize: Int,
        consume: ([Data]) async throws -> Void
    ) async throws -> Int
}

extension FHIRTransport {
    /// GET, with the defaults of a FHIR read.
    public func get(
        _ pathOrURL: String, accept: String = "application/fhir+json", headers: [(String, String)] = [],
        maxBytes: Int = 64 << 20, sendCredentials: Bool = true, probe: Bool = false
    ) async throws(RemoteError) -> FHIRResponse {
        try await send(
            "GET", pathOrURL, accept: accept, headers: headers, body: nil, maxBytes: maxBytes,
            sendCredentials: sendCredentials, probe: probe)
    }

    /// A write (or any method) with the defaults of a FHIR interaction.
    public func send(
        _ method: String, _ pathOrURL: String, headers: [(String, String)] = [], body: Data?
    ) async throws(RemoteError) -> FHIRResponse {
        try await send(
            method, pathOrURL, accept: "application/fhir+json", headers: headers, body: body, maxBytes: 64 << 20,
            sendCredentials: true, probe: false)
    }

    /// The origin of an absolute URL (`scheme://host:port`, default ports filled in).
    public static func origin(of url: String) -> String? {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased() else {
            return nil
        }
        let port = u.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }
}
