public import Foundation

/// What the hosted EHR's CapabilityStatement says it can do, reduced to what sync needs.
public struct ServerCapabilities: Sendable, Equatable {
    /// Resource types the server offers with `search-type`.
    public var searchableTypes: Set<String> = []
    /// System-level `_history` (carries deletions).
    public var systemHistory = false
    /// System-level Bulk Data `$export`.
    public var systemExport = false
    /// `Group/[id]/$export`.
    public var groupExport = false
    public var fhirVersion: String?
    /// Types for which the server says it honours `If-None-Exist` (`conditionalCreate`).
    public var conditionalCreateTypes: Set<String> = []

    public init() {}

    /// Types of the R4 Patient compartment (spec, compartmentdefinition-patient).
    public static let patientCompartment: Set<String> = [
        "Account", "AdverseEvent", "AllergyIntolerance", "Appointment", "AppointmentResponse", "AuditEvent", "Basic",
        "BodyStructure", "CarePlan", "CareTeam", "ChargeItem", "Claim", "ClaimResponse", "ClinicalImpression",
        "Communication", "CommunicationRequest", "Composition", "Condition", "Consent", "Coverage",
        "CoverageEligibilityRequest", "CoverageEligibilityResponse", "DetectedIssue", "DeviceRequest",
        "DeviceUseStatement", "DiagnosticReport", "DocumentManifest", "DocumentReference", "Encounter",
        "EnrollmentRequest", "EpisodeOfCare", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal", "Group",
        "ImagingStudy", "Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "Invoice", "List",
        "MeasureReport", "Media", "MedicationAdministration", "MedicationDispense", "MedicationRequest",
        "MedicationStatement", "MolecularSequence", "NutritionOrder", "Observation", "Patient", "Person", "Procedure",
        "Provenance", "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchSubject", "RiskAssessment",
        "Schedule", "ServiceRequest", "Specimen", "SupplyDelivery", "SupplyRequest", "VisionPrescription",
    ]

    /// Shared resources a practice's records point at: who, where, what drug, which device.
    public static let referenceTypes: Set<String> = [
        "Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Device",
    ]

    /// Always mirrored: what a practice's records point at.
    public static let essentialTypes = ["Practitioner", "Organization", "Location", "Medication"]

    /// The default mirror set: what the server offers of the Patient compartment, plus
    /// Practitioner, Organization, Location and Medication (and PractitionerRole and Device
    /// when offered), in a stable order: reference types first, then Patient, then the rest
    /// alphabetically.
    public var defaultTypes: [String] {
        let wanted = Self.patientCompartment.union(Self.referenceTypes).subtracting(["Group", "AuditEvent"])
        let offered = searchableTypes.intersection(wanted).union(Self.essentialTypes)
        let first = Self.referenceTypes.sorted() + ["Patient"]
        return first.filter(offered.contains) + offered.subtracting(first).sorted()
    }

    /// Parses a CapabilityStatement (JSON). Unknown shapes yield an empty capability set,
    /// which makes sync fall back to plain searches.
    public static func parse(_ data: Data) throws(ResourceError) -> ServerCapabilities {
        guard let value = try? JSONValue(data: data), let object = value.objectValue else { throw .notJSON }
        guard object["resourceType"]?.stringValue == "CapabilityStatement" else {
            throw .unexpectedType(
                expected: "CapabilityStatement", got: object["resourceType"]?.stringValue ?? "nothing")
        }
        var caps = ServerCapabilities()
        caps.fhirVersion = object["fhirVersion"]?.stringValue
        for rest in object["rest"]?.arrayValue ?? [] where (rest["mode"]?.stringValue ?? "server") == "server" {
            for interaction in rest["interaction"]?.arrayValue ?? []
            where interaction["code"]?.stringValue == "history-system" {
                caps.systemHistory = true
            }
            for operation in rest["operation"]?.arrayValue ?? [] {
                if Self.isExport(operation) { caps.systemExport = true }
            }
            for resource in rest["resource"]?.arrayValue ?? [] {
                guard let type = resource["type"]?.stringValue else { continue }
                let codes = (resource["interaction"]?.arrayValue ?? []).compactMap { $0["code"]?.stringValue }
                if codes.contains("search-type") { caps.searchableTypes.insert(type) }
                if resource["conditionalCreate"] == .bool(true) { caps.conditionalCreateTypes.insert(type) }
                if type == "Group", (resource["operation"]?.arrayValue ?? []).contains(where: Self.isExport) {
                    caps.groupExport = true
                }
            }
        }
        return caps
    }

    private static func isExport(_ operation: JSONValue) -> Bool {
        let name = operation["name"]?.stringValue ?? ""
        let definition = operation["definition"]?.stringValue ?? ""
        return name == "export" || name == "$export" || definition.hasSuffix("/export")
            || definition.hasSuffix("/group-export")
    }
}
