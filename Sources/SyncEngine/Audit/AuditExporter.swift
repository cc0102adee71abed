import Foundation
public import Logging
public import SyncModel
public import SyncStore

/// Sends the audit trail to the EHR as AuditEvents (``AuditWitness``) and checks the local
/// trail against what the EHR already holds: resumable (the last line the EHR holds is kept
/// in the sync state), idempotent (a line is written by `PUT` to an id of its own), and
/// never overwriting a witnessed line with a different one.
public struct AuditExporter: Sendable {
    let transport: any FHIRTransport
    let replica: Replica
    let logger: Logger
    /// Names this installation in `AuditEvent.source.observer`.
    let observer: String
    /// Lines per batch Bundle.
    let batchSize: Int

    public init(transport: any FHIRTransport, replica: Replica, observer: String, logger: Logger, batchSize: Int = 100)
    {
        self.transport = transport
        self.replica = replica
        self.observer = observer
        self.logger = logger
        self.batchSize = batchSize
    }

    /// Checks the trail against the EHR, then sends the lines it does not hold yet.
    /// Network failures are thrown (the next cycle tries again); the verdict otherwise.
    public func run() async throws -> AuditWitness.Verdict {
        let name = try replica.audit.witnessName()
        let local = try replica.audit.lastSeq()
        var exported = Int64(try replica.syncState.value(.auditExported) ?? "0") ?? 0
        if exported > local { return .shorter(local: local) }
        // Does the EHR hold a line past the local end? Then lines were removed here.
        let beyond = try await transport.get("AuditEvent/\(AuditWitness.eventID(replica: name, seq: local + 1))")
        switch beyond.status {
        case 200: return .shorter(local: local)
        case 404, 410: break
        default: return .refused(reason: Self.reason(beyond))
        }
        while exported < local {
            let lines = try replica.audit.lines(after: exported, limit: batchSize)
            guard let last = lines.last else { break }
            // Lines the EHR already holds must be the same lines (a resend after a crash is);
            // a different one means the trail here was replaced.
            let ids = lines.map { AuditWitness.eventID(replica: name, seq: $0.seq) }
            let held = try await transport.get("AuditEvent?_id=\(ids.joined(separator: ","))&_count=\(ids.count)")
            guard held.status == 200 else { return .refused(reason: Self.reason(held)) }
            var witnessed: [String: String] = [:]
            if let bundle = try? JSONValue(data: held.body) {
                for entry in bundle["entry"]?.arrayValue ?? [] {
                    guard let resource = entry["resource"], let id = resource["id"]?.stringValue else { continue }
                    witnessed[id] = AuditWitness.link(of: resource.data())
                }
            }
            var events: [JSONValue] = []
            for (line, id) in zip(lines, ids) {
                if let link = witnessed[id] {
                    guard link == AuditWitness.hex(line.link) else { return .diverged(seq: line.seq) }
                    continue
                }
                events.append(
                    AuditWitness.event(line.record, seq: line.seq, link: line.link, replica: name, observer: observer))
            }
            if !events.isEmpty {
                let answer = try await transport.send(
                    "POST", "", headers: [("Content-Type", "application/fhir+json")], body: AuditWitness.batch(events))
                guard (200..<300).contains(answer.status) else { return .refused(reason: Self.reason(answer)) }
                if let failure = AuditWitness.batchFailure(answer.body, expected: events.count) {
                    return .refused(reason: failure)
                }
            }
            exported = last.seq
            try replica.syncState.set([.auditExported: String(exported)])
            logger.debug(
                "audit lines sent to the EHR", metadata: ["through": "\(exported)", "sent": "\(events.count)"])
        }
        return .consistent(exported: exported, pending: local - exported)
    }

    /// The EHR's refusal in a few words: the status and the OperationOutcome's first issue
    /// code (never its text, which may echo data).
    static func reason(_ response: FHIRResponse) -> String {
        var reason = "HTTP \(response.status)"
        if let outcome = try? JSONValue(data: response.body),
            let code = outcome["issue"]?.arrayValue?.first?["code"]?.stringValue
        {
            reason += ", \(ControlRequestError.printable(code, limit: 40))"
        }
        return reason
    }
}
