public import Foundation
public import SyncModel

/// Patient demographic search, held only in memory.
///
/// Built at open by decrypting every Patient, and kept current as Patients are stored.
/// Nothing of it reaches the disk: unlike blind tokens it leaks no equality pattern
/// (shared surnames, birth dates) to someone holding the file. It costs one decryption per
/// Patient at open (a few milliseconds per thousand) and memory proportional to the
/// number of patients.
public struct PatientIndex: Sendable {
    struct Entry: Sendable {
        var id: String
        var names: [String]
        var families: [String]
        var givens: [String]
        var identifiers: [String]
        var birthDate: String?
        var gender: String?
    }

    var entries: [Data: Entry] = [:]

    public var count: Int { entries.count }

    /// Every patient's id, sorted.
    public var ids: [String] { entries.values.map(\.id).sorted() }

    public init() {}

    public mutating func upsert(bid: Data, json: Data) {
        guard let object = try? JSONValue(data: json), let id = object["id"]?.stringValue else { return }
        var entry = Entry(id: id, names: [], families: [], givens: [], identifiers: [])
        for name in object["name"]?.arrayValue ?? [] {
            if let family = name["family"]?.stringValue {
                entry.families += Self.tokens(family)
            }
            for given in name["given"]?.arrayValue ?? [] {
                if let given = given.stringValue { entry.givens += Self.tokens(given) }
            }
            if let text = name["text"]?.stringValue { entry.names += Self.tokens(text) }
        }
        entry.names += entry.families + entry.givens
        for identifier in object["identifier"]?.arrayValue ?? [] {
            guard let value = identifier["value"]?.stringValue else { continue }
            entry.identifiers.append(value)
            if let system = identifier["system"]?.stringValue { entry.identifiers.append("\(system)|\(value)") }
        }
        entry.birthDate = object["birthDate"]?.stringValue
        entry.gender = object["gender"]?.stringValue
        entries[bid] = entry
    }

    mutating func remove(bid: Data) {
        entries[bid] = nil
    }

    /// Folds case and diacritics and splits on non-letters: "Hélène-Marie" → ["helene", "marie"].
    static func normalize(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
    }

    static func tokens(_ text: String) -> [String] {
        normalize(text).split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
    }

    /// Ids of the patients matching every given criterion. Names match FHIR's way: a name
    /// part starting with each word of the query. Results are sorted by id for stable paging.
    public func search(_ query: PatientQuery) -> [String] {
        let nameWords = query.name.map(Self.tokens) ?? []
        let familyWords = query.family.map(Self.tokens) ?? []
        let givenWords = query.given.map(Self.tokens) ?? []
        var ids: [String] = []
        for entry in entries.values {
            if !nameWords.allSatisfy({ w in entry.names.contains { $0.hasPrefix(w) } }) { continue }
            if !familyWords.allSatisfy({ w in entry.families.contains { $0.hasPrefix(w) } }) { continue }
            if !givenWords.allSatisfy({ w in entry.givens.contains { $0.hasPrefix(w) } }) { continue }
            if let identifier = query.identifier, !entry.identifiers.contains(identifier) { continue }
            if let birthDate = query.birthDate, entry.birthDate != birthDate { continue }
            if let gender = query.gender, entry.gender != gender { continue }
            if let criterion = query.birthDateCriterion {
                guard let b = entry.birthDate, let range = DateRange(b), criterion.matches(range) else { continue }
            }
            ids.append(entry.id)
        }
        return ids.sorted()
    }
}

/// Criteria of a patient search; nil means "any".
public struct PatientQuery: Sendable, Equatable {
    public var name: String?
    public var family: String?
    public var given: String?
    /// A value, or `system|value`.
    public var identifier: String?
    /// `YYYY-MM-DD`.
    public var birthDate: String?
    public var gender: String?
    /// A birth date criterion with a prefix (`ge1970`), checked at the value's precision.
    public var birthDateCriterion: DateCriterion?

    public init(
        name: String? = nil, family: String? = nil, given: String? = nil, identifier: String? = nil,
        birthDate: String? = nil, gender: String? = nil
    ) {
        self.name = name
        self.family = family
        self.given = given
        self.identifier = identifier
        self.birthDate = birthDate
        self.gender = gender
    }
}

extension ResourceStore {
    /// Patients matching `query`, sorted by id.
    public func searchPatients(_ query: PatientQuery) throws(ReplicaError) -> [StoredResource] {
        let ids = patients.withLock { $0.search(query) }
        var result: [StoredResource] = []
        for id in ids {
            if let patient = try resource(type: "Patient", id: id) { result.append(patient) }
        }
        return result
    }

    /// Number of patients in the in-memory index.
    public var indexedPatients: Int { patients.withLock { $0.count } }

    func buildPatientIndex() throws(ReplicaError) {
        var index = PatientIndex()
        try forEachResource(type: "Patient") { stored in
            index.upsert(bid: blind(type: "Patient", id: stored.id), json: stored.json)
        }
        patients.withLock { $0 = index }
    }
}
