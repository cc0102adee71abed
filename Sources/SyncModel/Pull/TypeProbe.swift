public import Foundation

/// Finding the types a server really serves: what to ask about, and what its answers mean.
/// Pure; the puller does the asking.
public enum TypeProbe {
    /// What a cheap search of a type (`Type?_count=1`) says about it.
    public enum Verdict: Sendable, Equatable {
        /// 200 with a Bundle: the type is listable.
        case served
        /// The server knows the type but will not list it this way (400, 403, 422; or an
        /// unparameterised search refused): try another way.
        case refused(String)
        /// The server does not serve the type (404, 405, 410, 501).
        case absent(String)
        /// Anything else (5xx, 429, 401, a 200 that is not a Bundle): ask again later.
        case transient(String)
    }

    /// Types always asked about, declared or not: the R4 Patient compartment and what a
    /// practice's records point at or schedule with.
    public static let probed: Set<String> = ServerCapabilities.patientCompartment.union([
        "Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Appointment", "Schedule",
        "Slot",
    ])

    /// Types worth mirroring when declared (the probed ones plus Device).
    public static let wanted: Set<String> = probed.union(ServerCapabilities.referenceTypes)

    /// Left out unless the practice asks for them: the EHR's own access log and groups.
    public static let defaultExcluded: Set<String> = ["AuditEvent", "Group"]

    /// The types to ask about, in mirror order, and those left out by configuration.
    /// `configured` (`[sync] resource_types`) pins the set: nothing else is asked about.
    public static func candidates(declared: Set<String>, configured: [String]?, excluded: Set<String>) -> (
        ask: [String], excluded: [String]
    ) {
        if let configured {
            let pinned = Set(configured)
            let skipped = declared.intersection(wanted).union(probed).subtracting(pinned)
            return (sorted(configured), sorted(Array(skipped)))
        }
        let all = declared.intersection(wanted).union(probed)
        return (sorted(Array(all.subtracting(excluded))), sorted(Array(all.intersection(excluded))))
    }

    static func sorted(_ types: [String]) -> [String] {
        Array(Set(types)).sorted { TypeCoverage.order($0) < TypeCoverage.order($1) }
    }

    /// Reads the answer to a search of a type (`url`: what was asked, whose ids never reach the
    /// reason kept).
    public static func verdict(status: Int, body: Data, url: String = "") -> Verdict {
        switch status {
        case 200:
            if (try? BundlePage.parse(body)) != nil { return .served }
            return .transient("a 200 that is not a Bundle")
        case 400, 403, 422:
            return .refused("HTTP \(status): " + reason(body, url: url))
        case 404, 405, 410, 501:
            return .absent("HTTP \(status): " + reason(body, url: url))
        default:
            return .transient("HTTP \(status)")
        }
    }

    /// The server's words about a refused listing, for logs and status, without the ids the
    /// request carried (a server may echo "Patient/123 not found"): a patient's id is PHI.
    public static func reason(_ body: Data, url: String) -> String {
        var text = OperationOutcomeText.summary(body, limit: 160)
        let parts = url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var values = (parts.first ?? "").split(separator: "/").dropFirst().filter { !$0.hasPrefix("$") }.map(
            String.init)
        for pair in (parts.count > 1 ? parts[1] : "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, ["patient", "subject", "actor", "_id", "member"].contains(String(kv[0])) else {
                continue
            }
            let value = String(kv[1]).removingPercentEncoding ?? String(kv[1])
            values.append(value.hasPrefix("Patient/") ? String(value.dropFirst("Patient/".count)) : value)
        }
        for value in values.sorted(by: { $0.count > $1.count }) where !value.isEmpty {
            text = text.replacingOccurrences(of: value, with: "…")
        }
        return text
    }

    /// Whether an answer to a listing means "not this way" (as opposed to "not now").
    public static func isRefusal(_ status: Int) -> Bool {
        [400, 403, 404, 405, 410, 422, 501].contains(status)
    }

    /// The search parameter that scopes a type to one patient (R4 compartment definition),
    /// nil for types outside the Patient compartment.
    public static func patientParameter(_ type: String) -> String? {
        switch type {
        case "Patient": nil
        case "Schedule": "actor"
        case "Group": "member"
        case "Device": "patient"
        default: ServerCapabilities.patientCompartment.contains(type) ? "patient" : nil
        }
    }

    /// Whether refusals of `Patient/[id]/$everything` mean the server does not offer the
    /// operation, rather than that one patient is gone or restricted (a 404 for a patient
    /// deleted since, a 403 for a record under restricted access): only a run of refusals
    /// from the first patient asked, two long (one when there is a single patient).
    public static func everythingUnsupported(refusedFromStart: Int, patients: Int) -> Bool {
        refusedFromStart >= min(2, max(patients, 1))
    }

    /// `Patient/[id]/$everything` with `extra` (`?_since=…`).
    public static func everythingQuery(patientID: String, extra: String = "") -> String {
        let id = patientID.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-", "."])) ?? patientID
        return "Patient/\(id)/$everything\(extra)"
    }

    /// The first page of a type's listing for one patient.
    public static func patientQuery(_ type: String, patientID: String, extra: String = "") -> String? {
        guard let parameter = patientParameter(type) else { return nil }
        let id = patientID.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-", "."])) ?? patientID
        let value = parameter == "patient" ? id : "Patient/\(id)"
        return "\(type)?\(parameter)=\(value)\(extra)"
    }
}

/// The refusals of `Patient/[id]/$everything` met in one pass over the patients: whether one
/// means the server does not offer the operation (``TypeProbe/everythingUnsupported(refusedFromStart:patients:)``:
/// a run of refusals from the first patient asked) or only that this patient is gone or
/// restricted. A pass resumed after some patients were stored has had its answer.
public struct EverythingRefusals: Sendable {
    let patients: Int
    var fromStart = 0
    var answered: Bool

    public init(patients: Int, resumed: Bool = false) {
        self.patients = patients
        self.answered = resumed
    }

    /// A patient's listing was answered.
    public mutating func answer() { answered = true }

    /// A patient's listing was refused; true when that means the operation is unsupported.
    public mutating func refuse() -> Bool {
        guard !answered else { return false }
        fromStart += 1
        return TypeProbe.everythingUnsupported(refusedFromStart: fromStart, patients: patients)
    }
}
