import Foundation
import Logging
import SyncModel
import SyncStore

/// Finds the types the server really serves: the CapabilityStatement's, plus a cheap search
/// (`Type?_count=1`) of every Patient-compartment type and of what records point at, since
/// real CapabilityStatements leave types out or list some they do not serve. A type whose
/// whole listing is refused is tried for one patient; what answers that way is mirrored
/// patient by patient. Nothing is trusted on one declaration.
struct TypeDiscovery: PullEngine {
    let context: PullContext
    let capabilities: ServerCapabilities

    func run() async throws -> TypeCoverage {
        let declared = capabilities.searchableTypes
        let (ask, excluded) = TypeProbe.candidates(
            declared: declared, configured: settings.resourceTypes, excluded: settings.excludeTypes)
        var coverage = TypeCoverage()
        for type in excluded {
            coverage.set(.init(type: type, access: .excluded, declared: declared.contains(type)))
        }
        var samplePatient: String?
        var patientsServed = false
        for type in ask {
            let isDeclared = declared.contains(type)
            if settings.strategy == .perPatient, TypeProbe.patientParameter(type) != nil {
                coverage.set(.init(type: type, access: .perPatient, declared: isDeclared))
                continue
            }
            let response = try await client.get("\(type)?_count=1")
            let verdict = TypeProbe.verdict(status: response.status, body: response.body)
            if type == "Patient", verdict == .served {
                patientsServed = true
                samplePatient =
                    (try? BundlePage.parse(response.body))?.entries.lazy.compactMap(\.resource)
                    .compactMap { try? ResourceEnvelope.parse($0).id }.first
            }
            switch verdict {
            case .served:
                coverage.set(.init(type: type, access: .search, declared: isDeclared))
            case .transient(let reason):
                // Not an answer about the type: list it the usual way; the listing isolates
                // its own failures.
                logger.warning("type probe inconclusive", metadata: ["type": "\(type)", "reason": "\(reason)"])
                coverage.set(.init(type: type, access: .search, declared: isDeclared))
            case .refused(let reason), .absent(let reason):
                guard TypeProbe.patientParameter(type) != nil, patientsServed else {
                    let access: TypeCoverage.Access = if case .refused = verdict { .refused } else { .absent }
                    coverage.set(.init(type: type, access: access, declared: isDeclared, reason: reason))
                    continue
                }
                guard let patient = samplePatient,
                    let query = TypeProbe.patientQuery(type, patientID: patient, extra: "&_count=1")
                else {
                    // No patient yet to ask with: nothing to list either; asked patient by patient.
                    coverage.set(.init(type: type, access: .perPatient, declared: isDeclared, reason: reason))
                    continue
                }
                let scoped = try await client.get(query)
                let second = TypeProbe.verdict(status: scoped.status, body: scoped.body, url: query)
                switch second {
                case .served, .transient:
                    coverage.set(.init(type: type, access: .perPatient, declared: isDeclared, reason: reason))
                case .refused(let why):
                    coverage.set(.init(type: type, access: .refused, declared: isDeclared, reason: why))
                case .absent(let why):
                    // 404 both ways: not served (unless the whole listing was refused, 400/403).
                    if case .refused = verdict {
                        coverage.set(.init(type: type, access: .refused, declared: isDeclared, reason: reason))
                    } else {
                        coverage.set(.init(type: type, access: .absent, declared: isDeclared, reason: why))
                    }
                }
            }
        }
        logger.info(
            "types discovered",
            metadata: [
                "mirrored": "\(coverage.mirrored.count)", "per_patient": "\(coverage.perPatient.count)",
                "undeclared": "\(coverage.undeclared.joined(separator: ","))",
                "refused": "\(coverage.refused.map(\.type).joined(separator: ","))",
                "declared_not_served": "\(coverage.absentDeclared.joined(separator: ","))",
            ])
        return coverage
    }
}
