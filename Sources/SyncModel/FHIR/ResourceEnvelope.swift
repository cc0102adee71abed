public import Foundation

/// The few top-level fields of a FHIR resource that sync bookkeeping needs, read without
/// building the whole resource tree.
///
/// Everything else of the resource stays as the bytes the server sent.
public struct ResourceEnvelope: Sendable, Equatable {
    public var resourceType: String
    public var id: String
    public var versionId: String?
    public var lastUpdated: String?
    /// The id of the Patient whose compartment holds this resource (`subject`, `patient` or
    /// `beneficiary` referencing a Patient; the Patient itself for a Patient).
    public var patientID: String?

    public init(
        resourceType: String, id: String, versionId: String? = nil, lastUpdated: String? = nil,
        patientID: String? = nil
    ) {
        self.resourceType = resourceType
        self.id = id
        self.versionId = versionId
        self.lastUpdated = lastUpdated
        self.patientID = patientID
    }

    /// Reads the envelope of one JSON resource.
    ///
    /// - Throws: ``ResourceError`` when the bytes are not a JSON object, have no valid
    ///   `resourceType` or `id`, or exceed `sizeLimit`. Messages carry no content.
    public static func parse(_ bytes: Data, sizeLimit: Int = 64 << 20) throws(ResourceError) -> ResourceEnvelope {
        guard bytes.count <= sizeLimit else { throw .tooLarge(bytes: bytes.count, limit: sizeLimit) }
        // FHIR JSON is UTF-8: a resource that is not is refused here, never stored or served.
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .notUTF8 }
        let fields: Fields
        do {
            fields = try bytes.withUnsafeBytes { raw in Result { () throws(JSONSlicer.Error) in try Fields(raw) } }
                .get()
        } catch {
            throw .notJSON
        }
        guard let type = fields.resourceType, FHIRID.isValidType(type) else { throw .missingResourceType }
        guard let id = fields.id else { throw .missingID(resourceType: type) }
        guard FHIRID.isValid(id) else { throw .invalidID(resourceType: type) }
        var patient: String?
        if type == "Patient" {
            patient = id
        } else {
            for reference in fields.references {
                if let target = FHIRReference(reference), target.type == "Patient" {
                    patient = target.id
                    break
                }
            }
        }
        return ResourceEnvelope(
            resourceType: type, id: id, versionId: fields.versionId, lastUpdated: fields.lastUpdated, patientID: patient
        )
    }

    /// The envelope's fields, read with ``JSONSlicer`` straight from the bytes.
    private struct Fields {
        var resourceType: String?
        var id: String?
        var versionId: String?
        var lastUpdated: String?
        /// `subject`, `patient`, `beneficiary` references, in that order of preference.
        var references: [String] = []

        init(_ raw: UnsafeRawBufferPointer) throws(JSONSlicer.Error) {
            var refs: [Int: String] = [:]
            for (key, value) in try JSONSlicer.members(ofRaw: raw, in: 0..<raw.count) {
                switch key {
                case "resourceType": resourceType = JSONSlicer.string(inRaw: raw, at: value)
                case "id": id = JSONSlicer.string(inRaw: raw, at: value)
                case "meta":
                    guard raw[value.lowerBound] == 0x7B else { continue }
                    for (metaKey, metaValue) in try JSONSlicer.members(ofRaw: raw, in: value) {
                        if metaKey == "versionId" { versionId = JSONSlicer.string(inRaw: raw, at: metaValue) }
                        if metaKey == "lastUpdated" { lastUpdated = JSONSlicer.string(inRaw: raw, at: metaValue) }
                    }
                case "subject", "patient", "beneficiary":
                    guard raw[value.lowerBound] == 0x7B else { continue }
                    for (refKey, refValue) in try JSONSlicer.members(ofRaw: raw, in: value) where refKey == "reference"
                    {
                        let rank = key == "subject" ? 0 : key == "patient" ? 1 : 2
                        refs[rank] = JSONSlicer.string(inRaw: raw, at: refValue)
                    }
                default: continue
                }
            }
            references = refs.sorted { $0.key < $1.key }.map(\.value)
        }
    }
}

/// Why a resource from the server was refused. No case carries resource content.
public enum ResourceError: Error, Equatable, CustomStringConvertible {
    case notJSON
    case notUTF8
    case missingResourceType
    case missingID(resourceType: String)
    case invalidID(resourceType: String)
    case tooLarge(bytes: Int, limit: Int)
    case unexpectedType(expected: String, got: String)

    public var description: String {
        switch self {
        case .notJSON: "not a JSON object"
        case .notUTF8: "not valid UTF-8"
        case .missingResourceType: "no valid resourceType"
        case .missingID(let type): "\(type) without an id"
        case .invalidID(let type): "\(type) with an id that is not a FHIR id"
        case .tooLarge(let bytes, let limit): "resource of \(bytes) bytes exceeds the limit of \(limit) bytes"
        case .unexpectedType(let expected, let got): "expected \(expected), got \(got)"
        }
    }
}

/// FHIR `id` and resource type syntax.
public enum FHIRID {
    /// `[A-Za-z0-9\-\.]{1,64}`
    public static func isValid(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                || b == 0x2E
        }
    }

    /// An upper-case letter followed by letters, at most 64.
    public static func isValidType(_ type: String) -> Bool {
        let utf8 = type.utf8
        guard let first = utf8.first, first >= 0x41, first <= 0x5A, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { b in (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    }
}

/// A literal reference `Type/id`, relative or absolute (`https://…/Type/id`,
/// optionally followed by `/_history/N`).
public struct FHIRReference: Sendable, Equatable, Hashable {
    public var type: String
    public var id: String

    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }

    public init?(_ reference: String) {
        var parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count >= 4, parts[parts.count - 2] == "_history" {
            parts.removeLast(2)
        }
        guard parts.count >= 2 else { return nil }
        let type = String(parts[parts.count - 2])
        let id = String(parts[parts.count - 1])
        guard FHIRID.isValidType(type), FHIRID.isValid(id) else { return nil }
        self.init(type: type, id: id)
    }

    public var string: String { "\(type)/\(id)" }
}
