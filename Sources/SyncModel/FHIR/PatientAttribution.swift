public import Foundation

/// Which patients a returned record exposes, for the audit trail: a Patient exposes itself;
/// any other record every patient it references (`subject`, `patient`, `beneficiary`, a
/// participant…), so a record is never shown without being counted against someone. A
/// record naming no patient (a Practitioner, a Medication) exposes none.
public enum PatientAttribution {
    /// Patient ids exposed by the record, without repeats.
    public static func patients(in json: Data, type: String, id: String) -> [String] {
        if type == "Patient" { return [id] }
        guard let value = try? JSONValue(data: json) else { return [] }
        return ResourceReferences.collect(value).compactMap { key in
            key.hasPrefix("Patient/") ? String(key.dropFirst("Patient/".count)) : nil
        }
    }

    /// Patient ids exposed by a list of records (a search page and what it included).
    public static func patients(in records: some Sequence<(type: String, id: String, json: Data)>) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for record in records {
            for patient in patients(in: record.json, type: record.type, id: record.id)
            where seen.insert(patient).inserted {
                result.append(patient)
            }
        }
        return result
    }
}
