/// Whether a clinical resource meets search criteria, and the values searches sort by.
/// Pure: works on the parsed resource.
public enum SearchMatch {
    /// Members holding a resource's clinical date, by type (first present wins).
    static func dateMembers(_ type: String) -> [String] {
        switch type {
        case "Observation", "DiagnosticReport", "MedicationAdministration":
            ["effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"]
        case "Condition": ["onsetDateTime", "onsetPeriod", "recordedDate"]
        case "AllergyIntolerance": ["onsetDateTime", "recordedDate"]
        case "Encounter", "CarePlan", "CareTeam", "EpisodeOfCare": ["period"]
        case "MedicationRequest": ["authoredOn"]
        case "Immunization": ["occurrenceDateTime"]
        case "Procedure": ["performedDateTime", "performedPeriod"]
        case "DocumentReference": ["date"]
        case "ImagingStudy": ["started"]
        case "Claim", "ExplanationOfBenefit": ["created"]
        default:
            [
                "effectiveDateTime", "effectivePeriod", "date", "occurrenceDateTime", "period", "authoredOn",
                "recordedDate", "created", "issued",
            ]
        }
    }

    /// Members holding a resource's main code, by type.
    static func codeMembers(_ type: String) -> [String] {
        switch type {
        case "MedicationRequest", "MedicationAdministration", "MedicationStatement", "MedicationDispense":
            ["medicationCodeableConcept"]
        case "Immunization": ["vaccineCode"]
        case "DocumentReference", "Encounter": ["type"]
        default: ["code"]
        }
    }

    /// The clinical date range of a resource, if it has one.
    public static func dateRange(_ resource: JSONObject) -> DateRange? {
        guard case .string(let type)? = resource["resourceType"] else { return nil }
        for member in dateMembers(type) {
            guard let value = resource[member] else { continue }
            switch value {
            case .string(let text): if let r = DateRange(text) { return r }
            case .object(let period):
                if let r = DateRange(start: period["start"]?.stringValue, end: period["end"]?.stringValue) {
                    return r
                }
            default: continue
            }
        }
        return nil
    }

    public static func matches(_ resource: JSONObject, _ criterion: SearchRequest.Criterion) -> Bool {
        guard case .string(let type)? = resource["resourceType"] else { return false }
        switch criterion {
        case .id(let ids):
            return resource["id"]?.stringValue.map { ids.contains($0) } ?? false
        case .date(let date):
            return dateRange(resource).map { date.matches($0) } ?? false
        case .code(let tokens):
            let found = codeMembers(type).flatMap { Self.codings(in: resource[$0]) }
            return tokens.contains { t in found.contains { t.matches(system: $0.system, code: $0.code) } }
        case .status(let tokens):
            var values: [(system: String?, code: String?)] = []
            if let status = resource["status"]?.stringValue { values.append((nil, status)) }
            values += codings(in: resource["clinicalStatus"])
            return tokens.contains { t in
                values.contains { t.system == nil ? t.code == $0.code : t.matches(system: $0.system, code: $0.code) }
            }
        case .category(let tokens):
            let found = Self.codings(in: resource["category"])
            return tokens.contains { t in found.contains { t.matches(system: $0.system, code: $0.code) } }
        case .patient, .name, .family, .given, .identifier, .gender, .birthDate:
            // Answered by the compartment index and the patient index.
            return true
        }
    }

    /// Codings of a CodeableConcept, a list of them, or a Coding.
    static func codings(in value: JSONValue?) -> [(system: String?, code: String?)] {
        switch value {
        case .object(let object)?:
            if let list = object["coding"]?.arrayValue {
                return list.map { ($0["system"]?.stringValue, $0["code"]?.stringValue) }
            }
            if object["code"] != nil { return [(object["system"]?.stringValue, object["code"]?.stringValue)] }
            return []
        case .array(let items)?:
            return items.flatMap { codings(in: $0) }
        default:
            return []
        }
    }

    /// References (`Type/id`) under the members an `_include` parameter follows, one level
    /// of nesting deep (e.g. `participant[].individual`).
    public static func includeReferences(_ resource: JSONObject, parameter: String) -> [String] {
        guard let members = IncludePaths.members(parameter) else { return [] }
        var found: [String] = []
        func collect(_ value: JSONValue?, depth: Int) {
            switch value {
            case .object(let object)?:
                if let reference = object["reference"]?.stringValue, let key = ResourceReferences.key(reference) {
                    found.append(key)
                } else if depth > 0 {
                    for m in members { collect(object[m], depth: depth - 1) }
                }
            case .array(let items)?:
                for item in items { collect(item, depth: depth) }
            default:
                break
            }
        }
        for member in members { collect(resource[member], depth: 1) }
        var seen = Set<String>()
        return found.filter { seen.insert($0).inserted }
    }
}
