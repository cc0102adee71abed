/// The FHIR `Provenance` written next to a replayed change: who entered it, when, that it
/// was entered during an EHR outage, and through which device.
public enum ProvenanceRecord {
    /// - Parameters:
    ///   - target: `Type/id/_history/version` (or `Type/id`) of the server's result.
    ///   - activity: `CREATE`, `UPDATE` or `DELETE` (v3-DataOperation).
    public static func make(target: String, activity: String, author: String, localTime: String, device: String)
        -> JSONValue
    {
        let dataOperation = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
        let participation = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
        return [
            "resourceType": "Provenance",
            "target": [["reference": .string(target)]],
            "occurredDateTime": .string(localTime),
            "recorded": .string(localTime),
            "activity": ["coding": [["system": .string(dataOperation), "code": .string(activity)]]],
            "reason": [["text": "entered during EHR outage"]],
            "agent": [
                [
                    "type": ["coding": [["system": .string(participation), "code": "author"]]],
                    "who": ["display": .string(author)],
                ],
                [
                    "type": ["coding": [["system": .string(participation), "code": "assembler"]]],
                    "who": ["display": .string(device)],
                ],
            ],
        ]
    }
}
