/// A FHIR search on the local copy, parsed and checked: which criteria, paging, order and
/// includes. Pure; ``parse(type:query:)`` refuses what it does not support, by name.
public struct SearchRequest: Sendable, Equatable {
    public enum Criterion: Sendable, Equatable {
        /// Patient demographics, answered by the in-memory index.
        case name(String)
        case family(String)
        case given(String)
        case identifier(String)
        case gender(String)
        case birthDate(DateCriterion)
        /// `_id`: one of these ids.
        case id([String])
        /// `patient` / `subject`: the record belongs to this patient.
        case patient(String)
        /// Clinical criteria, each a list of alternatives (comma-separated in the query).
        case date(DateCriterion)
        case code([TokenCriterion])
        case status([TokenCriterion])
        case category([TokenCriterion])
    }

    public var resourceType: String
    public var criteria: [Criterion] = []
    public var count = 50
    public var offset = 0
    /// `date`, `-date`, `_lastUpdated`, `-_lastUpdated`, `_id` (default: `_id`).
    public var sort: SortKey = .id
    /// `Type:param` includes, e.g. `MedicationRequest:medication`.
    public var includes: [Include] = []

    public enum SortKey: String, Sendable, Equatable {
        case id = "_id"
        case date
        case dateDescending = "-date"
        case lastUpdated = "_lastUpdated"
        case lastUpdatedDescending = "-_lastUpdated"
    }

    public struct Include: Sendable, Equatable {
        public var sourceType: String
        public var parameter: String
    }

    public static let maxCount = 500
    public static let patientParameters: Set<String> = [
        "name", "family", "given", "birthdate", "identifier", "gender", "_id",
    ]
    public static let clinicalParameters: Set<String> = [
        "patient", "subject", "date", "code", "status", "category", "_id",
    ]
    public static let controlParameters: Set<String> = [
        "_count", "_offset", "_sort", "_include", "_format", "_pretty", "_summary", "_total", "_elements",
    ]

    public static func parse(type: String, query: [(String, String)]) throws(SearchError) -> SearchRequest {
        var request = SearchRequest(resourceType: type)
        let allowed = type == "Patient" ? patientParameters : clinicalParameters
        for (rawName, value) in query {
            // Modifiers other than the ones we answer are refused rather than ignored.
            var name = rawName
            var modifier: String?
            if let colon = rawName.firstIndex(of: ":") {
                name = String(rawName[..<colon])
                modifier = String(rawName[rawName.index(after: colon)...])
            }
            if controlParameters.contains(name) {
                try request.control(name, value)
                continue
            }
            guard allowed.contains(name) else {
                throw .unsupported(
                    parameter: rawName,
                    supported: (allowed.union(controlParameters)).sorted().joined(separator: ", "))
            }
            if let modifier, !(modifier == "exact" && ["name", "family", "given"].contains(name)) {
                throw .unsupported(parameter: rawName, supported: "modifier :exact on name, family, given")
            }
            guard !value.isEmpty else { throw .invalid(parameter: name, reason: "empty value") }
            switch name {
            case "name": request.criteria.append(.name(value))
            case "family": request.criteria.append(.family(value))
            case "given": request.criteria.append(.given(value))
            case "identifier": request.criteria.append(.identifier(value))
            case "gender": request.criteria.append(.gender(value))
            case "birthdate":
                request.criteria.append(.birthDate(try DateCriterion.parse(value, parameter: name)))
            case "_id": request.criteria.append(.id(value.split(separator: ",").map(String.init)))
            case "patient", "subject":
                var id = value
                if let slash = value.lastIndex(of: "/") {
                    let prefix = value[..<slash]
                    guard prefix.hasSuffix("Patient") else {
                        throw .invalid(parameter: name, reason: "only Patient references are supported")
                    }
                    id = String(value[value.index(after: slash)...])
                }
                guard FHIRID.isValid(id) else { throw .invalid(parameter: name, reason: "not a resource id") }
                request.criteria.append(.patient(id))
            case "date": request.criteria.append(.date(try DateCriterion.parse(value, parameter: name)))
            case "code": request.criteria.append(.code(TokenCriterion.parseList(value)))
            case "status": request.criteria.append(.status(TokenCriterion.parseList(value)))
            case "category": request.criteria.append(.category(TokenCriterion.parseList(value)))
            default: break
            }
        }
        return request
    }

    private mutating func control(_ name: String, _ value: String) throws(SearchError) {
        switch name {
        case "_count":
            guard let n = Int(value), n >= 0 else { throw .invalid(parameter: name, reason: "expected a number") }
            count = min(n, Self.maxCount)
        case "_offset":
            guard let n = Int(value), n >= 0 else { throw .invalid(parameter: name, reason: "expected a number") }
            offset = n
        case "_sort":
            guard let key = SortKey(rawValue: value) else {
                throw .invalid(parameter: name, reason: "supported: _id, date, -date, _lastUpdated, -_lastUpdated")
            }
            sort = key
        case "_include":
            let parts = value.split(separator: ":")
            guard parts.count == 2, FHIRID.isValidType(String(parts[0])),
                IncludePaths.members(String(parts[1])) != nil
            else {
                throw .invalid(
                    parameter: name,
                    reason: "expected Type:param with param one of \(IncludePaths.supported.joined(separator: ", "))")
            }
            includes.append(Include(sourceType: String(parts[0]), parameter: String(parts[1])))
        default:
            break  // _format, _pretty: JSON is the only format; _summary, _total, _elements: answered in full.
        }
    }
}

/// Why a search was refused.
public enum SearchError: Error, Equatable, CustomStringConvertible {
    case unsupported(parameter: String, supported: String)
    case invalid(parameter: String, reason: String)

    public var description: String {
        switch self {
        case .unsupported(let p, let supported): "search parameter \(p) is not supported here (supported: \(supported))"
        case .invalid(let p, let reason): "search parameter \(p): \(reason)"
        }
    }
}

/// The reference members that `_include=Type:param` follows.
public enum IncludePaths {
    static let table: [String: [String]] = [
        "patient": ["patient", "subject"],
        "subject": ["subject"],
        "encounter": ["encounter", "context"],
        "medication": ["medicationReference"],
        "requester": ["requester"],
        "performer": ["performer", "actor"],
        "practitioner": ["participant", "individual", "practitioner"],
        "organization": ["serviceProvider", "organization", "managingOrganization"],
        "author": ["author"],
        "recorder": ["recorder"],
        "asserter": ["asserter"],
        "location": ["location"],
    ]

    public static var supported: [String] { table.keys.sorted() }

    static func members(_ parameter: String) -> [String]? { table[parameter] }
}
