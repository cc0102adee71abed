public import Foundation
import SyncModel
import Synchronization

/// Real EHRs as they behave, emulated by the fault proxy in front of sekmet (never inside it):
/// what each refuses, caps or declares wrongly. A personality is a rule giving, for a request,
/// the answer that server would make (nil: forward unchanged).
public enum ServerPersonality: String, CaseIterable, Sendable, CustomStringConvertible {
    /// sekmet as it is: `_history`, `$export`, every search.
    case sekmet
    /// A patient-scoped vendor API: no `_history`, no `$export`, 400 with an OperationOutcome
    /// on clinical searches without `patient`, `_count` capped at 50; `Patient/$everything`.
    case patientScoped = "patient-scoped"
    /// Epic-style: as patient-scoped, with `_count` capped at 100, 403 on `_history`, no
    /// `Patient/$everything`, and Bulk Data at Group level only (`Group/[id]/$export`, with
    /// `_since`); the practice configures its Group (``groupID``).
    case epic
    /// Oracle/Cerner-style: no `$export`, no `_history`, no `Patient/$everything`, `patient`
    /// required on clinical searches, `_lastUpdated` refused on some types, and a 429 with
    /// Retry-After now and then (every 300th request).
    case cerner
    /// A CapabilityStatement that leaves out half the types it serves (and `_history`).
    case underDeclaring = "under-declaring"
    /// A CapabilityStatement that declares types it does not serve (404) and a `_history` it
    /// refuses (405).
    case overDeclaring = "over-declaring"

    public var description: String { rawValue }

    /// The practice's Group on servers that export at Group level (the tests create it with
    /// every patient as a member).
    public static let groupID = "practice"

    /// Types an over-declaring server lists but answers 404 for.
    public static let phantomTypes = ["Basic", "Media", "MolecularSequence"]
    /// Types whose `_lastUpdated` a Cerner-style server refuses.
    public static let noLastUpdated: Set<String> = ["Condition", "AllergyIntolerance", "CarePlan"]

    /// The rule for the proxy, given the upstream's CapabilityStatement (JSON).
    public func rule(metadata: Data) -> @Sendable (ProxyRequest) -> FaultMode? {
        let statement = (try? JSONSerialization.jsonObject(with: metadata)) as? [String: Any] ?? [:]
        let personality = self
        let rewrittenMetadata = Self.rewrite(statement, for: self)
        let counter = RequestCounter()
        return { request in
            let target = Target(request.uri)
            if target.segments.last == "metadata" {
                return rewrittenMetadata.map { .respond(status: 200, contentType: "application/fhir+json", body: $0) }
            }
            return personality.answer(target, method: request.method, count: counter.next())
        }
    }

    func answer(_ target: Target, method: String, count: Int) -> FaultMode? {
        guard method == "GET" else { return nil }
        switch self {
        case .sekmet, .underDeclaring:
            return nil
        case .overDeclaring:
            if target.isHistory { return Self.refuse(405, "history-system is not supported") }
            if let type = target.searchedType, Self.phantomTypes.contains(type) {
                return Self.refuse(404, "Unknown resource type \(type)")
            }
            return nil
        case .patientScoped, .epic, .cerner:
            if target.isHistory {
                return self == .epic
                    ? Self.refuse(403, "_history is not permitted") : Self.refuse(404, "Operation not supported")
            }
            if target.isExport {
                if self == .epic, target.segments.dropLast().dropLast().last == "Group" { return nil }
                return Self.refuse(404, "Bulk data export is not available")
            }
            if target.isEverything, self != .patientScoped {
                return Self.refuse(404, "Operation Patient/$everything is not supported")
            }
            if self == .cerner, count % 300 == 299 {
                return .status(429, retryAfter: 1)
            }
            guard let type = target.searchedType else { return nil }
            let clinical = type != "Patient" && Self.clinicalTypes.contains(type)
            if clinical, !target.hasParameter("patient"), !target.hasParameter("subject"),
                !target.hasParameter("actor")
            {
                return Self.refuse(400, "A patient parameter is required to search \(type)")
            }
            if self == .cerner, Self.noLastUpdated.contains(type), target.hasParameter("_lastUpdated") {
                return Self.refuse(400, "_lastUpdated is not a supported search parameter for \(type)")
            }
            let cap = self == .epic ? 100 : 50
            if let count = target.value("_count").flatMap(Int.init), count > cap {
                return .forward(uri: target.replacing("_count", with: String(cap)))
            }
            return nil
        }
    }

    /// The Patient compartment (R4), but Patient itself: what such servers scope to a patient.
    static let clinicalTypes = ServerCapabilities.patientCompartment.subtracting(["Patient"])

    static func refuse(_ status: Int, _ text: String) -> FaultMode {
        let code = status == 403 ? "forbidden" : status == 404 ? "not-supported" : "required"
        let body = Data(
            (#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":""# + code
                + #"","diagnostics":""# + text + #""}]}"#).utf8)
        return .respond(status: status, contentType: "application/fhir+json", body: body)
    }

    /// The CapabilityStatement this server shows, or nil to relay the upstream's.
    static func rewrite(_ statement: [String: Any], for personality: ServerPersonality) -> Data? {
        var statement = statement
        guard var rests = statement["rest"] as? [[String: Any]], !rests.isEmpty else { return nil }
        var rest = rests[0]
        var resources = rest["resource"] as? [[String: Any]] ?? []
        switch personality {
        case .sekmet:
            return nil
        case .underDeclaring:
            // Every other type left out, and the system interactions with them.
            resources = resources.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
            rest["interaction"] = []
        case .overDeclaring:
            for type in phantomTypes {
                resources.append(["type": type, "interaction": [["code": "read"], ["code": "search-type"]]])
            }
            rest["interaction"] = [["code": "history-system"], ["code": "transaction"]]
        case .patientScoped, .epic, .cerner:
            rest["interaction"] = (rest["interaction"] as? [[String: Any]] ?? []).filter {
                ($0["code"] as? String) != "history-system"
            }
            rest["operation"] = []
            for index in resources.indices {
                let groupExport = personality == .epic && resources[index]["type"] as? String == "Group"
                resources[index]["operation"] =
                    groupExport
                    ? [
                        [
                            "name": "export",
                            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                        ]
                    ] : []
            }
        }
        rest["resource"] = resources
        rests[0] = rest
        statement["rest"] = rests
        return try? JSONSerialization.data(withJSONObject: statement)
    }

    /// A request target taken apart.
    struct Target {
        let segments: [Substring]
        let query: [(String, String)]
        let raw: String

        init(_ uri: String) {
            raw = uri
            let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            segments = (parts.first ?? "").split(separator: "/")
            query = (parts.count > 1 ? parts[1] : "").split(separator: "&").map { pair in
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (String(kv[0]).removingPercentEncoding ?? String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
            }
        }

        var isHistory: Bool { segments.last == "_history" && segments.count <= 3 && !(segments.last?.isEmpty ?? true) }
        var isExport: Bool { segments.last == "$export" }
        var isEverything: Bool { segments.last == "$everything" }

        /// The type of a type-level search (`/fhir/Observation?…`).
        var searchedType: String? {
            guard let last = segments.last, let first = last.first, first.isUppercase,
                segments.count >= 1, !last.contains("$")
            else { return nil }
            // `/fhir/Observation/123` is a read, not a search.
            if segments.count >= 2, let previous = segments.dropLast().last, previous.first?.isUppercase == true {
                return nil
            }
            return String(last)
        }

        func hasParameter(_ name: String) -> Bool {
            query.contains { $0.0 == name || $0.0.hasPrefix(name + ":") }
        }

        func value(_ name: String) -> String? { query.first { $0.0 == name }?.1 }

        func replacing(_ name: String, with value: String) -> String {
            let path = raw.split(separator: "?", maxSplits: 1).first.map(String.init) ?? raw
            return path + "?"
                + query.map { $0.0 == name ? "\(name)=\(value)" : "\($0.0)=\($0.1)" }.joined(separator: "&")
        }
    }
}

/// Counts requests (for "every Nth request").
final class RequestCounter: Sendable {
    private let value = Mutex(0)
    func next() -> Int {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}
