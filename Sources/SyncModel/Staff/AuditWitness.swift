public import Foundation

/// The audit trail's outside witness: its lines sent to the EHR as FHIR `AuditEvent`s, so
/// the practice's EHR holds the record of outage-time access, and a local trail cut short or
/// rolled back to an older copy shows against it.
///
/// Each line becomes one AuditEvent with an id derived from the replica and the line's
/// number (`ehrsync-<replica>-<seq>`), written by `PUT` in `batch` Bundles: sending a line
/// twice (a crash between the write and the local mark) writes the same event again, never
/// a second one. Each event carries the line's chain link (an HMAC, no content), so a line
/// that differs from the witnessed one is told apart without reading the trail's content.
public enum AuditWitness {
    /// The identifier system of the lines (`entity.what.identifier`), with the replica.
    public static func identifierSystem(replica: String) -> String { "urn:ehr-sync:audit:\(replica)" }

    /// The AuditEvent id of line `seq` of this replica's trail (a valid FHIR id: ≤ 64 chars).
    public static func eventID(replica: String, seq: Int64) -> String { "ehrsync-\(replica)-\(seq)" }

    /// The FHIR AuditEvent action code of a trail action.
    static func actionCode(_ action: String) -> String {
        switch action {
        case "local-create", "user-add": "C"
        case "local-update", "user-passwd", "user-disable", "user-enable", "conflict-resolve", "outbox-retry",
            "held-approve", "held-reject", "key-rotate", "key-backup":
            "U"
        case "local-delete": "D"
        case "read", "search", "everything", "summary", "print", "attachment", "conflict-show", "audit-list": "R"
        default: "E"
        }
    }

    /// One trail line as an AuditEvent.
    public static func event(
        _ record: AuditRecord, seq: Int64, link: Data, replica: String, observer: String
    ) -> JSONValue {
        var entities: [JSONValue] = []
        if let patient = record.patient {
            entities.append(
                .object([
                    "what": .object(["reference": .string("Patient/\(patient)")]),
                    "type": .object([
                        "system": .string("http://terminology.hl7.org/CodeSystem/audit-entity-type"),
                        "code": .string("1"), "display": .string("Person"),
                    ]),
                    "role": .object([
                        "system": .string("http://terminology.hl7.org/CodeSystem/object-role"),
                        "code": .string("1"), "display": .string("Patient"),
                    ]),
                ]))
        }
        var details: [JSONValue] = [
            .object(["type": .string("chain"), "valueString": .string(hex(link))])
        ]
        if let target = record.target {
            details.append(.object(["type": .string("target"), "valueString": .string(target)]))
        }
        if let detail = record.detail {
            details.append(.object(["type": .string("detail"), "valueString": .string(detail)]))
        }
        entities.append(
            .object([
                "what": .object([
                    "identifier": .object([
                        "system": .string(identifierSystem(replica: replica)), "value": .string(String(seq)),
                    ])
                ]),
                "description": .string("ehr-sync audit trail line \(seq)"),
                "detail": .array(details),
            ]))
        return .object([
            "resourceType": .string("AuditEvent"),
            "id": .string(eventID(replica: replica, seq: seq)),
            "type": .object([
                "system": .string("http://terminology.hl7.org/CodeSystem/audit-event-type"),
                "code": .string("rest"), "display": .string("RESTful Operation"),
            ]),
            "subtype": .array([
                .object(["system": .string("urn:ehr-sync:audit-action"), "code": .string(record.action)])
            ]),
            "action": .string(actionCode(record.action)),
            "recorded": .string(record.at),
            "outcome": .string(record.action == "control-refused" || record.action == "login-failed" ? "4" : "0"),
            "agent": .array([.object(["who": .object(["display": .string(record.actor)]), "requestor": .bool(true)])]),
            "source": .object(["observer": .object(["display": .string(observer)])]),
            "entity": .array(entities),
        ])
    }

    /// A `batch` Bundle writing each event by `PUT AuditEvent/id` (idempotent).
    public static func batch(_ events: [JSONValue]) -> Data {
        let entries: [JSONValue] = events.map { event in
            let id = event["id"]?.stringValue ?? ""
            return .object([
                "resource": event,
                "request": .object(["method": .string("PUT"), "url": .string("AuditEvent/\(id)")]),
            ])
        }
        return JSONValue.object(["resourceType": .string("Bundle"), "type": .string("batch"), "entry": .array(entries)])
            .data()
    }

    /// Whether every entry of a batch response succeeded (2xx), or the first failure's status.
    public static func batchFailure(_ response: Data, expected: Int) -> String? {
        guard let bundle = try? JSONValue(data: response), let entries = bundle["entry"]?.arrayValue else {
            return "the EHR's answer is not a Bundle"
        }
        guard entries.count == expected else { return "the EHR answered \(entries.count) entries for \(expected)" }
        for entry in entries {
            let status = entry["response"]?["status"]?.stringValue ?? ""
            if !status.hasPrefix("2") { return "an entry was answered \(status.isEmpty ? "without a status" : status)" }
        }
        return nil
    }

    /// The chain link a witnessed event carries, or nil when it carries none.
    public static func link(of event: Data) -> String? {
        guard let value = try? JSONValue(data: event) else { return nil }
        for entity in value["entity"]?.arrayValue ?? [] {
            for detail in entity["detail"]?.arrayValue ?? [] where detail["type"]?.stringValue == "chain" {
                return detail["valueString"]?.stringValue
            }
        }
        return nil
    }

    public static func hex(_ data: Data) -> String {
        data.map { String(format: "%02x", $0) }.joined()
    }

    /// What the witness says of the local trail.
    public enum Verdict: Sendable, Equatable, Codable {
        /// Every line up to `exported` is held by the EHR; `pending` lines wait to be sent.
        case consistent(exported: Int64, pending: Int64)
        /// The EHR holds line `local + 1`: the trail was cut short or replaced by an older copy.
        case shorter(local: Int64)
        /// Line `seq` differs from the one the EHR witnessed.
        case diverged(seq: Int64)
        /// The EHR does not take AuditEvents (the reason it gave); the trail is local only.
        case refused(reason: String)
        /// Not checked yet (the EHR has not answered since the daemon started, or export is off).
        case unknown

        public var isBroken: Bool {
            switch self {
            case .shorter, .diverged: true
            default: false
            }
        }

        public var text: String {
            switch self {
            case .consistent(let exported, let pending):
                pending == 0
                    ? "all \(exported) lines held by the EHR" : "\(exported) lines held by the EHR, \(pending) to send"
            case .shorter(let local):
                "SHORTER than what the EHR witnessed: it holds line \(local + 1), the trail ends at \(local) "
                    + "(cut short, or restored from an older copy)"
            case .diverged(let seq):
                "line \(seq) DIFFERS from the one the EHR witnessed (replaced or rolled back)"
            case .refused(let reason): "not sent: the EHR refuses AuditEvents (\(reason))"
            case .unknown: "not checked against the EHR yet"
            }
        }
    }
}
