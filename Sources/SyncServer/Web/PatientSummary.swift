public import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// Where a record shown stands with the EHR: a local change not sent yet, one in conflict,
/// one the EHR refused (from the record's `meta.tag` in the ``PendingTag`` system).
public enum PendingMark: String, Sendable, Equatable {
    case notSent, conflict, parked

    static func of(_ object: JSONValue) -> PendingMark? {
        for tag in object["meta"]?["tag"]?.arrayValue ?? [] where tag["system"]?.stringValue == PendingTag.system {
            switch tag["code"]?.stringValue {
            case "conflict": return .conflict
            case "parked": return .parked
            default: return .notSent
            }
        }
        return nil
    }
}

/// One patient's record grouped for the summary, the print view and the day sheet, from the
/// resources of `Patient/$everything` on the local view. Pure: values in, values out; text
/// that needs a language (values, dates) is formatted when rendered.
public struct PatientSummary: Sendable {
    public struct Demographics: Sendable {
        public var id: String
        public var name: String
        public var family: String?
        public var birthDate: String?
        public var gender: String?
        /// (type, value); an empty type is shown as "identifier"
        public var identifiers: [(label: String, value: String)]
        public var addresses: [String]
        public var phones: [String]
        public var deceased: String?
        public var pending: PendingMark?
    }

    public struct Allergy: Sendable {
        public var substance: String
        public var clinicalStatus: String?
        public var criticality: String?
        public var reactions: [String]
        public var recorded: String?
        public var pending: PendingMark?
    }

    public struct Problem: Sendable {
        public var text: String
        public var onset: String?
        public var recorded: String?
        public var pending: PendingMark?
    }

    public struct Medication: Sendable {
        public var name: String
        public var dosage: String?
        public var authoredOn: String?
        public var prescriber: String?
        public var pending: PendingMark?
    }

    public struct Encounter: Sendable {
        public var type: String
        public var start: String?
        public var reason: String?
        public var practitioner: String?
        public var place: String?
        public var pending: PendingMark?
    }

    public struct Result: Sendable {
        public var name: String
        public var category: String?
        public var date: String?
        /// The JSON of the observation, formatted when rendered (decimals follow the language).
        var object: JSONValue
        public var pending: PendingMark?
    }

    public struct Immunization: Sendable {
        public var vaccine: String
        public var date: String?
        public var status: String?
        public var pending: PendingMark?
    }

    public struct Document: Sendable {
        public struct Content: Sendable {
            /// Index in `content[]`, for the download link.
            public var index: Int
            public var contentType: String?
            public var title: String?
            /// Decoded text of an inline `text/plain` attachment.
            public var text: String?
            /// Whether the attachment can be downloaded (inline data, or a URL).
            public var downloadable: Bool
        }

        public var id: String
        public var type: String
        public var date: String?
        public var author: String?
        public var status: String?
        public var description: String?
        public var contents: [Content]
        public var pending: PendingMark?
    }

    public var patient: Demographics
    public var allergies: [Allergy] = []
    public var problems: [Problem] = []
    public var medications: [Medication] = []
    /// Newest first.
    public var encounters: [Encounter] = []
    /// Newest first.
    public var results: [Result] = []
    public var immunizations: [Immunization] = []
    /// Newest first.
    public var documents: [Document] = []

    /// The resource types a summary reads (the viewer asks the replica for these only).
    public static let resourceTypes: Set<String> = [
        "Patient", "AllergyIntolerance", "Condition", "MedicationRequest", "Medication", "Encounter", "Observation",
        "Immunization", "DocumentReference",
    ]

    /// Groups `$everything`'s resources (the Patient first, or anywhere). Nil when the
    /// Patient `patientID` is not among them.
    public init?(patientID: String, resources: [Data]) {
        var objects: [JSONValue] = []
        for data in resources {
            if let value = try? JSONValue(data: data), value["resourceType"]?.stringValue != nil {
                objects.append(value)
            }
        }
        guard
            let patient = objects.first(where: {
                $0["resourceType"]?.stringValue == "Patient" && $0["id"]?.stringValue == patientID
            })
        else { return nil }
        self.patient = Self.demographics(patient, id: patientID)
        var medicationsByID: [String: JSONValue] = [:]
        for object in objects where object["resourceType"]?.stringValue == "Medication" {
            if let id = object["id"]?.stringValue { medicationsByID[id] = object }
        }
        for object in objects where !Self.enteredInError(object) {
            switch object["resourceType"]?.stringValue {
            case "AllergyIntolerance": allergies.append(Self.allergy(object))
            case "Condition":
                if let problem = Self.problem(object) { problems.append(problem) }
            case "MedicationRequest":
                if let medication = Self.medication(object, medications: medicationsByID) {
                    medications.append(medication)
                }
            case "Encounter": encounters.append(Self.encounter(object))
            case "Observation":
                if !Self.isQuestionnaireAnswer(object) { results.append(Self.result(object)) }
            case "Immunization": immunizations.append(Self.immunization(object))
            case "DocumentReference":
                if let document = Self.document(object) { documents.append(document) }
            default: break
            }
        }
        allergies.sort { ($0.recorded ?? "") > ($1.recorded ?? "") }
        problems.sort { ($0.onset ?? "") > ($1.onset ?? "") }
        medications.sort { ($0.authoredOn ?? "") > ($1.authoredOn ?? "") }
        encounters.sort { ($0.start ?? "") > ($1.start ?? "") }
        results.sort { ($0.date ?? "") > ($1.date ?? "") }
        immunizations.sort { ($0.date ?? "") > ($1.date ?? "") }
        documents.sort { ($0.date ?? "") > ($1.date ?? "") }
    }

    /// The raw attachment `n` of a DocumentReference among the resources: inline data
    /// (decoded) or the URL to find in the replica's stored attachments.
    public enum AttachmentSource: Sendable, Equatable {
        case inline(Data, contentType: String?)
        case url(String, contentType: String?)
    }

    /// Attachment `index` of DocumentReference `documentID` of the patient, or nil.
    public static func attachment(documentID: String, index: Int, patientID: String, resources: [Data])
        -> AttachmentSource?
    {
        for data in resources {
            guard let object = try? JSONValue(data: data), object["resourceType"]?.stringValue == "DocumentReference",
                object["id"]?.stringValue == documentID,
                object["subject"]?["reference"]?.stringValue.flatMap(ResourceReferences.key) == "Patient/\(patientID)",
                let contents = object["content"]?.arrayValue, contents.indices.contains(index)
            else { continue }
            let attachment = contents[index]["attachment"]
            let contentType = attachment?["contentType"]?.stringValue
            if let base64 = attachment?["data"]?.stringValue {
                return Data(base64Encoded: base64, options: .ignoreUnknownCharacters).map {
                    .inline($0, contentType: contentType)
                }
            }
            if let url = attachment?["url"]?.stringValue { return .url(url, contentType: contentType) }
            return nil
        }
        return nil
    }

    /// The content of a stored attachment: a server that answered the fetch of a `Binary`
    /// URL with the FHIR resource (JSON) instead of the native bytes gets it unwrapped, with
    /// the Binary's `contentType`.
    public static func nativeContent(_ data: Data, contentType: String?) -> (data: Data, contentType: String?) {
        guard data.first == UInt8(ascii: "{"), let object = try? JSONValue(data: data),
            object["resourceType"]?.stringValue == "Binary"
        else { return (data, contentType) }
        let type = object["contentType"]?.stringValue ?? contentType
        guard let base64 = object["data"]?.stringValue,
            let bytes = Data(base64Encoded: base64, options: .ignoreUnknownCharacters)
        else { return (Data(), type) }
        return (bytes, type)
    }

    // MARK: Extraction

    static func enteredInError(_ object: JSONValue) -> Bool {
        object["status"]?.stringValue == "entered-in-error"
            || FHIRText.code(object["verificationStatus"]) == "entered-in-error"
    }

    static func demographics(_ patient: JSONValue, id: String) -> Demographics {
        var identifiers: [(String, String)] = []
        for identifier in patient["identifier"]?.arrayValue ?? [] {
            guard let value = identifier["value"]?.stringValue else { continue }
            let label = FHIRText.concept(identifier["type"]) ?? ""
            identifiers.append((label, value))
        }
        let addresses = (patient["address"]?.arrayValue ?? []).compactMap { address -> String? in
            if let text = address["text"]?.stringValue { return text }
            var parts = (address["line"]?.arrayValue ?? []).compactMap(\.stringValue)
            parts += [address["postalCode"], address["city"], address["country"]].compactMap { $0?.stringValue }
            return parts.isEmpty ? nil : parts.joined(separator: ", ")
        }
        let phones = (patient["telecom"]?.arrayValue ?? []).compactMap { t -> String? in
            guard t["system"]?.stringValue == "phone" else { return nil }
            return t["value"]?.stringValue
        }
        var deceased: String?
        if let date = patient["deceasedDateTime"]?.stringValue {
            deceased = date
        } else if case .bool(true)? = patient["deceasedBoolean"] {
            deceased = ""
        }
        return Demographics(
            id: id, name: FHIRText.patientName(patient) ?? id, family: FHIRText.familyName(patient),
            birthDate: patient["birthDate"]?.stringValue, gender: patient["gender"]?.stringValue,
            identifiers: identifiers, addresses: addresses, phones: phones, deceased: deceased,
            pending: PendingMark.of(patient))
    }

    static func allergy(_ object: JSONValue) -> Allergy {
        let reactions = (object["reaction"]?.arrayValue ?? []).flatMap { reaction in
            (reaction["manifestation"]?.arrayValue ?? []).compactMap { FHIRText.concept($0) }
        }
        return Allergy(
            substance: FHIRText.concept(object["code"]) ?? "?", clinicalStatus: FHIRText.code(object["clinicalStatus"]),
            criticality: object["criticality"]?.stringValue, reactions: reactions,
            recorded: object["recordedDate"]?.stringValue ?? FHIRText.clinicalDate(object),
            pending: PendingMark.of(object))
    }

    /// Active problems only: clinical status active, recurrence or relapse.
    static func problem(_ object: JSONValue) -> Problem? {
        guard let status = FHIRText.code(object["clinicalStatus"]),
            ["active", "recurrence", "relapse"].contains(status)
        else { return nil }
        return Problem(
            text: FHIRText.concept(object["code"]) ?? "?",
            onset: object["onsetDateTime"]?.stringValue ?? object["onsetPeriod"]?["start"]?.stringValue,
            recorded: object["recordedDate"]?.stringValue, pending: PendingMark.of(object))
    }

    /// Current medications only: status active.
    static func medication(_ object: JSONValue, medications: [String: JSONValue]) -> Medication? {
        guard object["status"]?.stringValue == "active" else { return nil }
        var name = FHIRText.concept(object["medicationCodeableConcept"])
        if name == nil, let reference = object["medicationReference"] {
            if let key = reference["reference"]?.stringValue.flatMap(ResourceReferences.key),
                key.hasPrefix("Medication/"), let medication = medications[String(key.dropFirst("Medication/".count))]
            {
                name = FHIRText.concept(medication["code"])
            } else if let local = reference["reference"]?.stringValue, local.hasPrefix("#") {
                let contained = (object["contained"]?.arrayValue ?? []).first {
                    "#" + ($0["id"]?.stringValue ?? "") == local
                }
                name = FHIRText.concept(contained?["code"])
            }
            name = name ?? FHIRText.referenceDisplay(reference)
        }
        let dosage = (object["dosageInstruction"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }
        return Medication(
            name: name ?? "?", dosage: dosage.isEmpty ? nil : dosage.joined(separator: "; "),
            authoredOn: object["authoredOn"]?.stringValue,
            prescriber: FHIRText.referenceDisplay(object["requester"]), pending: PendingMark.of(object))
    }

    static func encounter(_ object: JSONValue) -> Encounter {
        let type =
            (object["type"]?.arrayValue ?? []).compactMap { FHIRText.concept($0) }.first
            ?? object["class"]?["display"]?.stringValue ?? object["class"]?["code"]?.stringValue ?? "?"
        let reason = (object["reasonCode"]?.arrayValue ?? []).compactMap { FHIRText.concept($0) }.first
        let practitioner = (object["participant"]?.arrayValue ?? []).compactMap {
            FHIRText.referenceDisplay($0["individual"])
        }.first
        let place =
            (object["location"]?.arrayValue ?? []).compactMap { FHIRText.referenceDisplay($0["location"]) }.first
            ?? FHIRText.referenceDisplay(object["serviceProvider"])
        return Encounter(
            type: type, start: object["period"]?["start"]?.stringValue, reason: reason, practitioner: practitioner,
            place: place, pending: PendingMark.of(object))
    }

    /// Answers to questionnaires (category `survey`) are not results: left out of the summary.
    static func isQuestionnaireAnswer(_ object: JSONValue) -> Bool {
        (object["category"]?.arrayValue ?? []).contains { category in
            (category["coding"]?.arrayValue ?? []).contains { $0["code"]?.stringValue == "survey" }
        }
    }

    static func result(_ object: JSONValue) -> Result {
        let category = (object["category"]?.arrayValue ?? []).compactMap { FHIRText.concept($0) }.first
        return Result(
            name: FHIRText.concept(object["code"]) ?? "?", category: category, date: FHIRText.clinicalDate(object),
            object: object, pending: PendingMark.of(object))
    }

    static func immunization(_ object: JSONValue) -> Immunization {
        Immunization(
            vaccine: FHIRText.concept(object["vaccineCode"]) ?? "?",
            date: object["occurrenceDateTime"]?.stringValue ?? object["occurrenceString"]?.stringValue,
            status: object["status"]?.stringValue, pending: PendingMark.of(object))
    }

    static func document(_ object: JSONValue) -> Document? {
        guard let id = object["id"]?.stringValue else { return nil }
        var contents: [Document.Content] = []
        for (index, content) in (object["content"]?.arrayValue ?? []).enumerated() {
            guard let attachment = content["attachment"] else { continue }
            let contentType = attachment["contentType"]?.stringValue
            var text: String?
            let data = attachment["data"]?.stringValue
            if let data, (contentType ?? "text/plain").lowercased().hasPrefix("text/plain"),
                let bytes = Data(base64Encoded: data, options: .ignoreUnknownCharacters)
            {
                text = String(decoding: bytes, as: UTF8.self)
            }
            contents.append(
                Document.Content(
                    index: index, contentType: contentType, title: attachment["title"]?.stringValue, text: text,
                    downloadable: data != nil || attachment["url"]?.stringValue != nil))
        }
        let author = (object["author"]?.arrayValue ?? []).compactMap { FHIRText.referenceDisplay($0) }.first
        return Document(
            id: id,
            type: FHIRText.concept(object["type"])
                ?? (object["category"]?.arrayValue ?? []).compactMap { FHIRText.concept($0) }.first ?? "?",
            date: object["date"]?.stringValue ?? object["context"]?["period"]?["start"]?.stringValue,
            author: author, status: object["docStatus"]?.stringValue ?? object["status"]?.stringValue,
            description: object["description"]?.stringValue, contents: contents, pending: PendingMark.of(object))
    }
}
