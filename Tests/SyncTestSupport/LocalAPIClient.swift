import AsyncHTTPClient
public import Foundation
import NIOCore
public import NIOHTTP1

/// An answer of the daemon's local API.
public struct LocalAPIResponse: Sendable {
    public var status: Int
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: Data

    /// The body as a JSON object, if it is one.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
    }

    /// `X-Outbox-Entry`: the outbox entry a write went into.
    public var outboxEntry: Int64? { headers["x-outbox-entry"].flatMap { Int64($0) } }

    /// The id at the end of the `Location` header of a create (`/fhir/Type/id`).
    public var locationID: String? {
        headers["location"].flatMap { $0.split(separator: "/").last.map(String.init) }
    }

    /// The `meta.tag` codes of the body with the given system.
    public func tags(system: String) -> [String] {
        let meta = json?["meta"] as? [String: Any]
        let tags = meta?["tag"] as? [[String: Any]] ?? []
        return tags.filter { $0["system"] as? String == system }.compactMap { $0["code"] as? String }
    }

    /// The diagnostics of an OperationOutcome body, joined.
    public var diagnostics: String {
        let issues = json?["issue"] as? [[String: Any]] ?? []
        return issues.compactMap { $0["diagnostics"] as? String }.joined(separator: "; ")
    }
}

/// A small client of the daemon's local FHIR API (`[local_api]`), as a practice's software
/// would use it: bearer token, `application/fhir+json`, one connection a request (the daemon
/// is killed and restarted under it in tests, so nothing is kept alive).
public final class LocalAPIClient: Sendable {
    /// e.g. `http://127.0.0.1:PORT/fhir` (no trailing slash).
    public let baseURL: String
    /// The bearer token sent by default; nil sends none.
    public let token: String?

    public init(baseURL: String, token: String?) {
        self.baseURL = baseURL
        self.token = token
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// One request. `token` overrides the client's token for this request (`.some(nil)`:
    /// no Authorization header).
    public func request(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, token override: String?? = nil,
        headers: [(String, String)] = []
    ) async throws -> LocalAPIResponse {
        var request = HTTPClientRequest(url: baseURL + "/" + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/fhir+json")
        request.headers.add(name: "Connection", value: "close")
        let token = override ?? self.token
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/fhir+json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        var map: [String: String] = [:]
        for header in response.headers { map[header.name.lowercased()] = header.value }
        return LocalAPIResponse(status: Int(response.status.code), headers: map, body: Data(buffer.readableBytesView))
    }

    /// `POST [base]/Type` of a resource (its `resourceType` names the type).
    public func create(_ resource: [String: Any], token: String?? = nil) async throws -> LocalAPIResponse {
        guard let type = resource["resourceType"] as? String else { throw Failure(description: "no resourceType") }
        return try await request(
            .POST, type, body: try JSONSerialization.data(withJSONObject: resource), token: token)
    }

    /// `PUT [base]/Type/id` of a resource (its `resourceType` and `id` name the target).
    public func update(_ resource: [String: Any], token: String?? = nil) async throws -> LocalAPIResponse {
        guard let type = resource["resourceType"] as? String, let id = resource["id"] as? String else {
            throw Failure(description: "no resourceType or id")
        }
        return try await request(
            .PUT, "\(type)/\(id)", body: try JSONSerialization.data(withJSONObject: resource), token: token)
    }

    /// `DELETE [base]/Type/id`.
    public func delete(_ type: String, _ id: String, token: String?? = nil) async throws -> LocalAPIResponse {
        try await request(.DELETE, "\(type)/\(id)", token: token)
    }

    /// `GET [base]/Type/id`: the local view (queued changes over the mirrored version).
    public func read(_ type: String, _ id: String, token: String?? = nil) async throws -> LocalAPIResponse {
        try await request(.GET, "\(type)/\(id)", token: token)
    }
}
