import AsyncHTTPClient
public import Foundation
import NIOCore
public import NIOHTTP1

/// Direct access to the test FHIR server, bypassing ehr-sync: reads every resource of a
/// type, and makes the changes "another client" makes during tests.
public final class ServerClient: Sendable {
    public let baseURL: String
    let http = HTTPClient(eventLoopGroupProvider: .singleton)

    public init(baseURL: String) { self.baseURL = baseURL }

    deinit { try? http.syncShutdown() }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = [])
        async throws -> (status: Int, headers: [String: String], body: Data)
    {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : baseURL + "/" + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/fhir+json")
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/fhir+json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: .seconds(120))
        let buffer = try await response.body.collect(upTo: 256 << 20)
        var map: [String: String] = [:]
        for h in response.headers { map[h.name.lowercased()] = h.value }
        return (Int(response.status.code), map, Data(buffer.readableBytesView))
    }

    public func json(_ path: String) async throws -> [String: Any] {
        let r = try await request(.GET, path)
        guard r.status == 200, let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw Failure(description: "GET \(path.prefix(40)) answered \(r.status)")
        }
        return object
    }

    /// Every current resource of `type`, by id (paged with `_sort=_id`).
    public func all(_ type: String) async throws -> [String: [String: Any]] {
        var result: [String: [String: Any]] = [:]
        var next: String? = "\(type)?_count=500&_sort=_id"
        while let url = next {
            let bundle = try await json(url)
            for entry in bundle["entry"] as? [[String: Any]] ?? [] {
                if let resource = entry["resource"] as? [String: Any], resource["resourceType"] as? String == type,
                    let id = resource["id"] as? String
                {
                    result[id] = resource
                }
            }
            next =
                (bundle["link"] as? [[String: Any]] ?? []).first { $0["relation"] as? String == "next" }?["url"]
                as? String
        }
        return result
    }

    /// Every resource a search returns (`Type?params`), following `next` links; entries of
    /// other types (e.g. OperationOutcome warnings) are left out.
    public func search(_ query: String) async throws -> [[String: Any]] {
        let type = String(query.prefix { $0 != "?" })
        var result: [[String: Any]] = []
        var next: String? = query + (query.contains("?") ? "&" : "?") + "_count=500"
        while let url = next {
            let bundle = try await json(url)
            for entry in bundle["entry"] as? [[String: Any]] ?? [] {
                if let resource = entry["resource"] as? [String: Any], resource["resourceType"] as? String == type {
                    result.append(resource)
                }
            }
            next =
                (bundle["link"] as? [[String: Any]] ?? []).first { $0["relation"] as? String == "next" }?["url"]
                as? String
        }
        return result
    }

    /// The status of `GET path` (e.g. 410 for a deleted resource).
    /// The types the server's CapabilityStatement declares searchable.
    public func declaredTypes() async throws -> Set<String> {
        let metadata = try await json("metadata")
        var types = Set<String>()
        for rest in metadata["rest"] as? [[String: Any]] ?? [] {
            for resource in rest["resource"] as? [[String: Any]] ?? [] {
                let codes = (resource["interaction"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
                if codes.contains("search-type"), let type = resource["type"] as? String { types.insert(type) }
            }
        }
        return types
    }

    public func status(_ path: String) async throws -> Int {
        try await request(.GET, path).status
    }

    public func put(_ resource: [String: Any]) async throws -> Int {
        let type = resource["resourceType"] as! String
        let id = resource["id"] as! String
        return try await request(.PUT, "\(type)/\(id)", body: try JSONSerialization.data(withJSONObject: resource))
            .status
    }

    public func delete(_ type: String, _ id: String) async throws -> Int {
        try await request(.DELETE, "\(type)/\(id)").status
    }
}

/// Canonical JSON for comparing content regardless of key order and server bookkeeping.
public enum CanonicalJSON {
    /// Sorted keys, `meta` removed (server bookkeeping differs between a read and a search).
    public static func data(_ object: [String: Any]) throws -> Data {
        var copy = object
        copy["meta"] = nil
        return try JSONSerialization.data(withJSONObject: copy, options: [.sortedKeys])
    }
}
