public import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// The downtime entry form turned into FHIR resources, or the reasons it cannot be. Pure:
/// the form's text, the patient, the author and the time in; resources or problems out.
///
/// - a consultation note → `DocumentReference` (status `current`, type LOINC 11506-3
///   "Progress note", the text as a base64 `text/plain` attachment);
/// - vital signs → `Observation`s in category `vital-signs`: body weight 29463-7 (kg),
///   height 8302-2 (cm), heart rate 8867-4 (/min), blood pressure panel 85354-9 with
///   systolic 8480-6 and diastolic 8462-4 components (mm[Hg]), temperature 8310-5 (Cel).
///
/// Every field is optional, but at least one must be given. Decimals take a point or a
/// comma; each measurement has a plausible range.
public enum DowntimeEntry {
    public enum Field: String, Sendable, CaseIterable {
        case note, weight, height, heartRate, systolic, diastolic, temperature
    }

    /// The form as typed.
    public struct Input: Sendable, Equatable {
        public var values: [Field: String]

        public init(_ values: [Field: String] = [:]) {
            self.values = values
        }

        /// From the posted form (field names as ``Field`` raw values).
        public init(form: WebForm) {
            values = [:]
            for field in Field.allCases { values[field] = form[field.rawValue] ?? "" }
        }

        public subscript(field: Field) -> String {
            values[field] ?? ""
        }
    }

    public enum Problem: Sendable, Equatable {
        case notANumber(Field)
        case outOfRange(Field, min: String, max: String)
        case bloodPressureIncomplete
        case systolicBelowDiastolic
        case nothingEntered
        case noteTooLong(Int)
    }

    /// What the entry produced, one resource each.
    public enum Kind: String, Sendable {
        case note, weight, height, heartRate, bloodPressure, temperature
    }

    public struct Resource: Sendable, Equatable {
        public var kind: Kind
        public var resourceType: String
        public var json: Data
    }

    public static let maxNoteLength = 20_000

    struct Measure {
        var field: Field
        var kind: Kind
        var loinc: String
        var display: String
        var unit: String
        var ucum: String
        var range: ClosedRange<Double>
    }

    static let measures: [Measure] = [
        Measure(
            field: .weight, kind: .weight, loinc: "29463-7", display: "Body weight", unit: "kg", ucum: "kg",
            range: 0.2...500),
        Measure(
            field: .height, kind: .height, loinc: "8302-2", display: "Body height", unit: "cm", ucum: "cm",
            range: 20...260),
        Measure(
            field: .heartRate, kind: .heartRate, loinc: "8867-4", display: "Heart rate", unit: "/min", ucum: "/min",
            range: 20...300),
        Measure(
            field: .temperature, kind: .temperature, loinc: "8310-5", display: "Body temperature", unit: "°C",
            ucum: "Cel", range: 30...45),
    ]
    static let systolic = Measure(
        field: .systolic, kind: .bloodPressure, loinc: "8480-6", display: "Systolic blood pressure", unit: "mm[Hg]",
        ucum: "mm[Hg]", range: 40...300)
    static let diastolic = Measure(
        field: .diastolic, kind: .bloodPressure, loinc: "8462-4", display: "Diastolic blood pressure",
        unit: "mm[Hg]", ucum: "mm[Hg]", range: 20...200)

    /// The resources of an entry, or every problem found (then nothing is to be queued).
    public static func build(_ input: Input, patientID: String, author: String, now: Double)
        -> Result<[Resource], EntryProblems>
    {
        var problems: [Problem] = []
        var resources: [Resource] = []
        let instant = FHIRInstant.format(now)
        let subject: JSONValue = ["reference": .string("Patient/\(patientID)")]
        let performer: JSONValue = [["display": .string(author)]]

        let note = input[.note].replacingOccurrences(of: "\r\n", with: "\n").trimmingCharacters(
            in: .whitespacesAndNewlines)
        if note.count > maxNoteLength {
            problems.append(.noteTooLong(maxNoteLength))
        } else if !note.isEmpty {
            let document: JSONValue = [
                "resourceType": "DocumentReference",
                "status": "current",
                "docStatus": "final",
                "type": [
                    "coding": [["system": "http://loinc.org", "code": "11506-3", "display": "Progress note"]],
                    "text": "Progress note",
                ],
                "category": [
                    [
                        "coding": [
                            [
                                "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                "code": "clinical-note", "display": "Clinical Note",
                            ]
                        ]
                    ]
                ],
                "subject": subject,
                "date": .string(instant),
                "author": performer,
                "content": [
                    [
                        "attachment": [
                            "contentType": "text/plain; charset=utf-8",
                            "data": .string(Data(note.utf8).base64EncodedString()),
                            "creation": .string(instant),
                        ]
                    ]
                ],
            ]
            resources.append(Resource(kind: .note, resourceType: "DocumentReference", json: document.data()))
        }

        func observation(code: Measure, display: String, value: JSONValue?, components: [JSONValue]) -> JSONValue {
            var object: JSONObject = [
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    [
                        "coding": [
                            [
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs", "display": "Vital Signs",
                            ]
                        ]
                    ]
                ],
                "code": [
                    "coding": [
                        ["system": "http://loinc.org", "code": .string(code.loinc), "display": .string(display)]
                    ],
                    "text": .string(display),
                ],
                "subject": subject,
                "effectiveDateTime": .string(instant),
                "issued": .string(instant),
                "performer": performer,
            ]
            if let value { object["valueQuantity"] = value }
            if !components.isEmpty { object["component"] = .array(components) }
            return .object(object)
        }

        func quantity(_ number: String, _ m: Measure) -> JSONValue {
            [
                "value": .number(number), "unit": .string(m.unit), "system": "http://unitsofmeasure.org",
                "code": .string(m.ucum),
            ]
        }

        /// The field's number, nil when empty; a problem recorded when invalid.
        func number(_ m: Measure) -> (text: String, value: Double)? {
            let raw = input[m.field].trimmingCharacters(in: .whitespaces)
            guard !raw.isEmpty else { return nil }
            guard let text = normalizedDecimal(raw), let value = Double(text) else {
                problems.append(.notANumber(m.field))
                return nil
            }
            guard m.range.contains(value) else {
                problems.append(
                    .outOfRange(m.field, min: decimalText(m.range.lowerBound), max: decimalText(m.range.upperBound)))
                return nil
            }
            return (text, value)
        }

        for m in measures {
            if let n = number(m) {
                let object = observation(code: m, display: m.display, value: quantity(n.text, m), components: [])
                resources.append(Resource(kind: m.kind, resourceType: "Observation", json: object.data()))
            }
        }
        let givenSystolic = !input[.systolic].trimmingCharacters(in: .whitespaces).isEmpty
        let givenDiastolic = !input[.diastolic].trimmingCharacters(in: .whitespaces).isEmpty
        let s = number(systolic)
        let d = number(diastolic)
        if givenSystolic != givenDiastolic {
            problems.append(.bloodPressureIncomplete)
        } else if let s, let d {
            if s.value <= d.value {
                problems.append(.systolicBelowDiastolic)
            } else {
                let panel = Measure(
                    field: .systolic, kind: .bloodPressure, loinc: "85354-9",
                    display: "Blood pressure panel with all children optional", unit: "", ucum: "", range: 0...0)
                let components: [JSONValue] = [(systolic, s.text), (diastolic, d.text)].map { m, text in
                    [
                        "code": [
                            "coding": [
                                ["system": "http://loinc.org", "code": .string(m.loinc), "display": .string(m.display)]
                            ],
                            "text": .string(m.display),
                        ],
                        "valueQuantity": quantity(text, m),
                    ]
                }
                let object = observation(code: panel, display: panel.display, value: nil, components: components)
                let index = resources.firstIndex { $0.kind == .temperature } ?? resources.endIndex
                resources.insert(
                    Resource(kind: .bloodPressure, resourceType: "Observation", json: object.data()), at: index)
            }
        }
        if problems.isEmpty && resources.isEmpty { problems.append(.nothingEntered) }
        return problems.isEmpty ? .success(resources) : .failure(EntryProblems(problems))
    }

    /// `72,5` → `72.5`; `072` → `72`; nil unless digits with at most one decimal separator
    /// (at most 4 digits before it and 3 after).
    static func normalizedDecimal(_ raw: String) -> String? {
        let text = raw.replacingOccurrences(of: ",", with: ".")
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), (1...4).contains(parts[0].count),
            parts[0].allSatisfy({ $0.isASCII && $0.isNumber })
        else { return nil }
        var integer = String(parts[0].drop { $0 == "0" })
        if integer.isEmpty { integer = "0" }
        guard parts.count == 2 else { return integer }
        guard (1...3).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return "\(integer).\(parts[1])"
    }

    static func decimalText(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// The problems of an entry, as an error.
public struct EntryProblems: Error, Sendable, Equatable {
    public var problems: [DowntimeEntry.Problem]

    public init(_ problems: [DowntimeEntry.Problem]) {
        self.problems = problems
    }
}
