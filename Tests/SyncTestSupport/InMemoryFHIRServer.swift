public import Foundation
public import SyncEngine
public import SyncModel
import Synchronization

/// A FHIR server in memory, behind the engines' ``FHIRTransport`` seam: versioned reads,
/// `If-Match` updates and deletes, creates with `If-None-Exist`, identifier searches and
/// `metadata`. Unit tests run the real reconciler against it in-process, with faults a real
/// network has (an answer lost after the write was applied, a refusal, an outage).
///
/// Integration tests use sekmet-fhir through the real ``FHIRClient`` instead.
public final class InMemoryFHIRServer: FHIRTransport {
    /// What happens to the next request that matches.
    public enum Fault: Sendable {
        /// The server applies the request, then the answer is lost on the way back.
        case loseAnswer
        /// The server is down: nothing is applied.
        case unavailable
        /// The server refuses the request with this status and an OperationOutcome.
        case refuse(Int)
    }

    public struct Stored: Sendable {
        public var version: Int
        public var resource: JSONObject
        public var deleted: Bool
        /// Server time of the write (seconds since 1970).
        public var lastUpdated: Double = 0
    }

    struct State {
        var resources: [String: [String: Stored]] = [:]
        var log: [String] = []
        var faults: [(method: String, pathPrefix: String, fault: Fault)] = []
        var nextID = 1
        /// The server's clock: one second further at every write.
        var clock: Double = 1_790_000_000

        mutating func tick() -> Double {
            clock += 1
            return clock
        }
    }

    private let state = Mutex(State())
    /// Whether the CapabilityStatement promises `conditionalCreate`, and whether the server
    /// honours `If-None-Exist` (some do not, whatever they declare).
    public let declaresConditionalCreate: Bool
    public let honoursIfNoneExist: Bool

    public init(declaresConditionalCreate: Bool = true, honoursIfNoneExist: Bool = true) {
        self.declaresConditionalCreate = declaresConditionalCreate
        self.honoursIfNoneExist = honoursIfNoneExist
    }

    public let origin = "http://ehr.test:80"

    public func url(_ pathOrURL: String) -> String {
        pathOrURL.hasPrefix("http") ? pathOrURL : "http://ehr.test/fhir/" + pathOrURL
    }

    // MARK: Test controls

    /// Puts a resource on the server as if written there (version 1, or the next).
    @discardableResult
    public func put(_ resource: JSONObject) -> Int {
        state.withLock { state in
            let type = resource["resourceType"]?.stringValue ?? ""
            let id = resource["id"]?.stringValue ?? ""
            let version = (state.resources[type]?[id]?.version ?? 0) + 1
            state.resources[type, default: [:]][id] = Stored(
                version: version, resource: resource, deleted: false, lastUpdated: state.tick())
            return version
        }
    }

    public func resource(_ type: String, _ id: String) -> Stored? { state.withLock { $0.resources[type]?[id] } }

    /// Live resources of a type.
    public func all(_ type: String) -> [JSONObject] {
        state.withLock { $0.resources[type]?.values.filter { !$0.deleted }.map(\.resource) ?? [] }
    }

    /// `METHOD path` of every request, in order.
    public var requests: [String] { state.withLock { $0.log } }

    /// The next request whose method and path (without the query) start so meets `fault`.
    public func inject(_ fault: Fault, method: String, pathPrefix: String) {
        state.withLock { $0.faults.append((method, pathPrefix, fault)) }
    }

    // MARK: FHIRTransport

    public func send(
        _ method: String, _ pathOrURL: String, accept: String, headers: [(String, String)], body: Data?,
        maxBytes: Int, sendCredentials: Bool, probe: Bool
    ) async throws(RemoteError) -> FHIRResponse {
        let path = pathOrURL.hasPrefix("http://ehr.test/fhir/") ? String(pathOrURL.dropFirst(21)) : pathOrURL
        let route = String(path.split(separator: "/").first ?? "")
        let headerMap = Dictionary(headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
        let fault: Fault? = state.withLock { state in
            state.log.append("\(method) \(path)")
            let bare = path.split(separator: "?").first.map(String.init) ?? path
            guard let i = state.faults.firstIndex(where: { $0.method == method && bare.hasPrefix($0.pathPrefix) })
            else { return nil }
            return state.faults.remove(at: i).fault
        }
        switch fault {
        case .unavailable?:
            throw .unavailable(route: route, reason: "connection refused")
        case .refuse(let status)?:
            let outcome: JSONValue = [
                "resourceType": "OperationOutcome",
                "issue": [["severity": "error", "code": "invalid", "diagnostics": "refused by the test server"]],
            ]
            return FHIRResponse(status: status, body: outcome.data())
        case .loseAnswer?:
            _ = handle(method, path, headers: headerMap, body: body)
            throw .unavailable(route: route, reason: "connection reset after the request was sent")
        case nil:
            return handle(method, path, headers: headerMap, body: body)
        }
    }

    public func streamLines(
        _ pathOrURL: String, sendCredentials: Bool, maxLineBytes: Int, batchSize: Int,
        consume: ([Data]) async throws -> Void
    ) async throws -> Int {
        throw RemoteError.status(route: "$export", code: 404)
    }

    // MARK: The server

    private func handle(_ method: String, _ path: String, headers: [String: String], body: Data?) -> FHIRResponse {
        let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
        let segments = parts[0].split(separator: "/").map(String.init)
        let query = parts.count > 1 ? parts[1] : nil
        switch (method, segments.count) {
        case ("GET", 1) where segments[0] == "metadata":
            return json(200, capabilityStatement())
        case ("GET", 1):
            return json(200, searchset(type: segments[0], query: query ?? ""))
        case ("GET", 2):
            guard let stored = resource(segments[0], segments[1]) else { return outcome(404) }
            return stored.deleted ? outcome(410) : json(200, .object(withMeta(stored)))
        case ("POST", 1):
            return create(type: segments[0], headers: headers, body: body)
        case ("PUT", 2):
            return update(type: segments[0], id: segments[1], headers: headers, body: body)
        case ("DELETE", 2):
            return delete(type: segments[0], id: segments[1], headers: headers)
        default:
            return outcome(400)
        }
    }

    private func create(type: String, headers: [String: String], body: Data?) -> FHIRResponse {
        guard let body, case .object(var object)? = try? JSONValue(data: body) else { return outcome(400) }
        if honoursIfNoneExist, let condition = headers["if-none-exist"],
            let existing = matches(type: type, query: condition).first
        {
            return json(200, .object(existing))
        }
        let (id, version) = state.withLock { state -> (String, Int) in
            let id = "s\(state.nextID)"
            state.nextID += 1
            return (id, 1)
        }
        object["id"] = .string(id)
        object["meta"] = nil
        let stored = state.withLock { state in
            let stored = Stored(version: version, resource: object, deleted: false, lastUpdated: state.tick())
            state.resources[type, default: [:]][id] = stored
            return stored
        }
        return json(
            201, .object(withMeta(stored)),
            headers: ["location": "http://ehr.test/fhir/\(type)/\(id)/_history/1", "etag": "W/\"1\""])
    }

    private func update(type: String, id: String, headers: [String: String], body: Data?) -> FHIRResponse {
        guard let body, case .object(var object)? = try? JSONValue(data: body) else { return outcome(400) }
        let current = resource(type, id)
        if let ifMatch = headers["if-match"], let current, "W/\"\(current.version)\"" != ifMatch {
            return outcome(412)
        }
        object["meta"] = nil
        object["id"] = .string(id)
        let stored = state.withLock { state in
            let stored = Stored(
                version: (current?.version ?? 0) + 1, resource: object, deleted: false, lastUpdated: state.tick())
            state.resources[type, default: [:]][id] = stored
            return stored
        }
        return json(
            current == nil || current?.deleted == true ? 201 : 200, .object(withMeta(stored)),
            headers: ["etag": "W/\"\(stored.version)\""])
    }

    private func delete(type: String, id: String, headers: [String: String]) -> FHIRResponse {
        guard var current = resource(type, id), !current.deleted else { return FHIRResponse(status: 204) }
        if let ifMatch = headers["if-match"], "W/\"\(current.version)\"" != ifMatch { return outcome(412) }
        current.version += 1
        current.deleted = true
        let updated = state.withLock { state in
            current.lastUpdated = state.tick()
            state.resources[type]?[id] = current
            return current
        }
        return FHIRResponse(status: 204, headers: ["etag": "W/\"\(updated.version)\""])
    }

    private func searchset(type: String, query: String) -> JSONValue {
        let found = matches(type: type, query: query)
        let now = state.withLock { $0.clock }
        return [
            "resourceType": "Bundle", "type": "searchset", "total": .number(String(found.count)),
            "meta": ["lastUpdated": .string(FHIRInstant.format(now))],
            "entry": .array(found.map { ["resource": .object($0), "search": ["mode": "match"]] }),
        ]
    }

    /// Live resources matching `identifier=system|value` or `_tag=system|code` (the only
    /// searches the reconciler makes), optionally changed since `_lastUpdated=ge…`; any other
    /// search lists every live resource of the type in one page.
    private func matches(type: String, query: String) -> [JSONObject] {
        var wanted: (field: String, system: String, value: String)?
        var since: Double?
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if kv.count == 2, kv[0] == "_lastUpdated", kv[1].hasPrefix("ge") {
                since = FHIRInstant.parse(String(kv[1].dropFirst(2)))
            }
            guard kv.count == 2, kv[0] == "identifier" || kv[0] == "_tag" else { continue }
            let token = kv[1].split(separator: "|", maxSplits: 1).map(String.init)
            guard token.count == 2 else { continue }
            wanted = (kv[0], token[0], token[1])
        }
        let live = state.withLock { state in
            (state.resources[type] ?? [:]).values.filter { !$0.deleted && $0.lastUpdated >= since ?? 0 }
                .sorted { $0.lastUpdated < $1.lastUpdated }
        }
        guard let wanted else { return live.map(withMeta) }
        return live.filter { stored in
            if wanted.field == "identifier" {
                return (stored.resource["identifier"]?.arrayValue ?? []).contains {
                    $0["system"] == .string(wanted.system) && $0["value"] == .string(wanted.value)
                }
            }
            return (stored.resource["meta"]?["tag"]?.arrayValue ?? []).contains {
                $0["system"] == .string(wanted.system) && $0["code"] == .string(wanted.value)
            }
        }.map(withMeta)
    }

    private func withMeta(_ stored: Stored) -> JSONObject {
        var object = stored.resource
        var meta = object["meta"]?.objectValue ?? JSONObject()
        meta["versionId"] = .string(String(stored.version))
        meta["lastUpdated"] = .string(FHIRInstant.format(stored.lastUpdated))
        object["meta"] = .object(meta)
        return object
    }

    private func capabilityStatement() -> JSONValue {
        let types = ["Patient", "Observation", "Condition", "Encounter", "Provenance"]
        return [
            "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "rest": [
                [
                    "mode": "server",
                    "resource": .array(
                        types.map { type in
                            [
                                "type": .string(type), "conditionalCreate": .bool(declaresConditionalCreate),
                                "interaction": [["code": "read"], ["code": "search-type"], ["code": "create"]],
                            ]
                        }),
                ]
            ],
        ]
    }

    private func json(_ status: Int, _ value: JSONValue, headers: [String: String] = [:]) -> FHIRResponse {
        FHIRResponse(status: status, headers: headers, body: value.data())
    }

    private func outcome(_ status: Int) -> FHIRResponse {
        json(status, ["resourceType": "OperationOutcome", "issue": [["severity": "error", "code": "processing"]]])
    }
}
