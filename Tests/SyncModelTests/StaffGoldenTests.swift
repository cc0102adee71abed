import Foundation
import GRDB
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// `syncctl user list`, `syncctl audit list` and `syncctl audit verify` screens, and the
/// unusual-reading lines of `syncctl status`, compared with `testdata/<case>/stdout`
/// (Litestream style). Regenerate with `EHR_SYNC_UPDATE_GOLDEN=1 swift test --filter StaffGolden`.
@Suite struct StaffGoldenTests {
    static func account(
        _ name: String, _ displayName: String, language: String = "fr", disabled: Bool = false,
        created: String = "2026-11-02T08:00:00.000Z", changed: String? = nil, role: ViewerRole = .clinician
    ) -> StaffAccountSummary {
        StaffAccountSummary(
            StaffAccount(
                name: name, displayName: displayName, language: language, disabled: disabled, role: role,
                passwordHash: "pbkdf2-sha256$600000$c2FsdA==$aGFzaA==", createdAt: created,
                passwordChangedAt: changed ?? created))
    }

    static let users = [
        account("amartin", "Dr A. Martin"),
        account("bpetit", "Dr Bruno Petit", language: "en", changed: "2026-11-20T17:45:10.000Z"),
        account("reception", "Accueil", disabled: true, created: "2026-11-03T07:30:00.000Z", role: .reception),
    ]

    static let records = [
        AuditRecord(at: "2026-11-28T18:20:00.000Z", actor: "amartin", action: "login"),
        AuditRecord(
            at: "2026-11-28T18:20:31.250Z", actor: "amartin", action: "read", target: "Patient/pat-0042",
            patient: "pat-0042"),
        AuditRecord(
            at: "2026-11-28T18:21:02.000Z", actor: "amartin", action: "search", target: "Observation?patient",
            patient: "pat-0042"),
        AuditRecord(
            at: "2026-11-29T09:45:00.000Z", actor: "root (uid 0)", action: "conflict-resolve", target: "Patient/pat-7",
            detail: "kept local"),
        AuditRecord(
            at: "2026-11-29T09:50:12.000Z", actor: "root (uid 0)", action: "user-add", target: "account bpetit"),
    ]

    static func alerts() -> [AccessAlert] {
        var monitor = AccessMonitor(threshold: 2, window: 600)
        let start = FHIRInstant.parse("2026-11-29T09:20:00Z")!
        var raised: [AccessAlert] = []
        for (n, patient) in ["p1", "p2", "p3", "p4"].enumerated() {
            if let alert = monitor.record(account: "amartin", patient: patient, now: start + Double(n) * 10) {
                raised.append(AccessAlert(alert))
            }
        }
        raised.append(
            AccessAlert(account: "api-reader", patients: 45, windowSeconds: 90, at: "2026-11-29T09:40:00.000Z"))
        return raised
    }

    static func statusWithAlerts() -> StatusReport {
        var report = StatusReport(
            state: "online", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:59:30.000Z",
            dataAsOf: "2026-11-29T09:59:00.000Z", keySource: "key file /etc/ehr-sync/replica.key")
        report.accessAlerts = alerts()
        return report
    }

    static let cases: [(String, String)] = [
        ("user-list", StaffAccountSummary.listText(users)),
        ("user-empty", StaffAccountSummary.listText([])),
        ("audit-list", AuditRecord.listText(records, limit: 100)),
        ("audit-limited", AuditRecord.listText(Array(records.suffix(2)), limit: 2)),
        ("audit-empty", AuditRecord.listText([], limit: 100)),
        ("audit-verify-intact", AuditBreak.verifyText(.success(42))),
        ("audit-verify-one", AuditBreak.verifyText(.success(1))),
        ("audit-verify-altered", AuditBreak.verifyText(.failure(brokenLine(3, "line altered")))),
        ("audit-verify-missing", AuditBreak.verifyText(.failure(brokenLine(7, "line missing")))),
        ("status-access-alert", statusWithAlerts().text(now: FHIRInstant.parse("2026-11-29T10:00:00Z")!)),
        ("status-integrity-broken", statusWithBrokenRows().text(now: FHIRInstant.parse("2026-11-29T10:00:00Z")!)),
    ]

    /// Status after the check at start found a queued change deleted outside ehr-syncd.
    static func statusWithBrokenRows() -> StatusReport {
        var report = StatusReport(
            state: "online", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:59:30.000Z",
            dataAsOf: "2026-11-29T09:59:00.000Z", keySource: "key file /etc/ehr-sync/replica.key")
        report.integrity = ReplicaIntegrityStatus(
            problems: ["outbox: 1 row(s) fewer than sealed (deleted outside ehr-syncd)"], checked: "start")
        return report
    }

    /// An `AuditBreak` as the control socket carries it.
    static func brokenLine(_ seq: Int64, _ reason: String) -> AuditBreak {
        try! JSONDecoder().decode(AuditBreak.self, from: Data(#"{"seq":\#(seq),"reason":"\#(reason)"}"#.utf8))
    }

    @Test(arguments: cases.map(\.0))
    func screenMatchesGolden(name: String) throws {
        let text = try #require(Self.cases.first { $0.0 == name }?.1)
        let golden = try GoldenFile.expected(name, current: text)
        #expect(text == golden)
    }

    @Test func userListNeverShowsHashes() throws {
        let text = StaffAccountSummary.listText(Self.users)
        #expect(!text.contains("pbkdf2"))
        let json = String(decoding: try JSONEncoder().encode(Self.users), as: UTF8.self)
        #expect(!json.contains("pbkdf2"))
        #expect(!json.contains("passwordHash"))
    }

    @Test func controlCharactersInCellsAreNotPrinted() {
        let record = AuditRecord(at: "2026-11-28T18:20:00.000Z", actor: "evil\u{1B}[2J", action: "read\nx")
        let text = AuditRecord.listText([record])
        #expect(!text.contains("\u{1B}"))
        #expect(text.split(separator: "\n").count == 2)
    }

    @Test func alertsMakeStatusAWarning() throws {
        let report = Self.statusWithAlerts()
        #expect(report.accessAlerts.count == 2)
        #expect(report.accessAlerts[0].patients == 3)
        #expect(report.accessAlerts[0].at == "2026-11-29T09:20:20.000Z")
        #expect(report.exitCode == 1)
        #expect(
            report.text(now: 0).contains(
                "\nUnusual reading: account amartin opened 3 patients in 10 min at 2026-11-29 09:20 UTC"))
        var quiet = report
        quiet.accessAlerts = []
        #expect(quiet.exitCode == 0)
        #expect(!quiet.text(now: 0).contains("Unusual"))
    }

    @Test func statusJSONCarriesAlertsAndOlderAnswersDecode() throws {
        let report = Self.statusWithAlerts()
        let data = try JSONEncoder().encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let alerts = try #require(object["accessAlerts"] as? [[String: Any]])
        #expect(alerts.first?["account"] as? String == "amartin")
        #expect(alerts.first?["windowSeconds"] as? Int == 600)
        #expect(try JSONDecoder().decode(StatusReport.self, from: data) == report)
        // An answer from a daemon without the field.
        var older = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        older["accessAlerts"] = nil
        let decoded = try JSONDecoder().decode(StatusReport.self, from: JSONSerialization.data(withJSONObject: older))
        #expect(decoded.accessAlerts.isEmpty)
        // Empty alerts are written, not left out.
        var quiet = report
        quiet.accessAlerts = []
        let quietObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(quiet)) as? [String: Any]
        #expect((quietObject?["accessAlerts"] as? [Any])?.isEmpty == true)
    }

    @Test func controlResponsesRoundTrip() throws {
        let responses: [ControlResponse] = [
            .users(Self.users),
            .audit(Self.records),
            .auditVerification(.success(12)),
            .auditVerification(.failure(Self.brokenLine(4, "line missing"))),
        ]
        for response in responses {
            let decoded = try JSONDecoder().decode(ControlResponse.self, from: JSONEncoder().encode(response))
            #expect(decoded == response)
        }
        #expect(responses[2].auditResult == .success(12))
        #expect(responses[3].auditResult == .failure(Self.brokenLine(4, "line missing")))
        #expect(ControlResponse.done("x").auditResult == nil)
        // An older daemon's answer decodes, without the new fields.
        let old = try JSONDecoder().decode(ControlResponse.self, from: Data(#"{"ok":true,"message":"paused"}"#.utf8))
        #expect(old == .done("paused"))
        #expect(old.userList == nil && old.auditRecords == nil && old.auditResult == nil)
    }

    @Test func sinceTakesDatesAndInstants() {
        #expect(AuditRecord.sinceInstant("2026-11-01") == "2026-11-01T00:00:00.000Z")
        #expect(AuditRecord.sinceInstant("2026-11-01T08:30:00Z") == "2026-11-01T08:30:00.000Z")
        #expect(AuditRecord.sinceInstant("2026-11-01T08:30:00+01:00") == "2026-11-01T07:30:00.000Z")
        #expect(AuditRecord.sinceInstant("2026-11-01T08:30:00.5Z") == "2026-11-01T08:30:00.500Z")
        #expect(AuditRecord.sinceInstant("yesterday") == nil)
        #expect(AuditRecord.sinceInstant("2026-13-01") == nil)
        #expect(AuditRecord.sinceInstant("") == nil)
    }

    @Test func filtersMatchPatientAndUser() {
        let read = Self.records[1]
        #expect(read.matches(patient: nil, user: nil))
        #expect(read.matches(patient: "pat-0042", user: "amartin"))
        #expect(!read.matches(patient: "pat-0043", user: nil))
        #expect(!read.matches(patient: nil, user: "amart"))
        let resolve = Self.records[3]
        #expect(resolve.matches(patient: nil, user: "root"))
        #expect(resolve.matches(patient: nil, user: "root (uid 0)"))
        #expect(!resolve.matches(patient: "pat-7", user: nil))
    }
}

/// The chain check of a real replica, through what `syncctl audit verify` prints.
@Suite struct AuditVerifyScreenTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    /// A closed replica holding `count` audit records.
    func replica(records count: Int) throws {
        let replica = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        for i in 1...count {
            try replica.audit.append(
                AuditRecord(
                    at: "2026-11-0\(i)T10:00:00.000Z", actor: "amartin", action: "read", target: "Patient/p\(i)",
                    patient: "p\(i)"))
        }
        replica.close()
    }

    func screen() throws -> (text: String, exitCode: Int32) {
        let replica = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        defer { replica.close() }
        let result = try replica.audit.verify()
        // Through the control socket's encoding, as syncctl receives it.
        let response = try JSONDecoder().decode(
            ControlResponse.self, from: JSONEncoder().encode(ControlResponse.auditVerification(result)))
        let received = try #require(response.auditResult)
        return (AuditBreak.verifyText(received), AuditBreak.exitCode(received))
    }

    func tamper(_ sql: String) throws {
        try OutsideWriter.write(dir.file(Replica.fileName)) { db in try db.execute(sql: sql) }
    }

    @Test func intactTrail() throws {
        try replica(records: 5)
        let (text, code) = try screen()
        #expect(text == "audit trail intact: 5 records\n")
        #expect(code == 0)
    }

    @Test func editedTimeIsFound() throws {
        try replica(records: 5)
        try tamper("UPDATE audit_log SET at = '2026-11-09T10:00:00.000Z' WHERE seq = 3")
        let (text, code) = try screen()
        #expect(text.hasPrefix("audit trail BROKEN at record #3: line altered\n"))
        #expect(code == 2)
    }

    @Test func deletedLineIsFound() throws {
        try replica(records: 5)
        try tamper("DELETE FROM audit_log WHERE seq = 4")
        let (text, code) = try screen()
        #expect(text.hasPrefix("audit trail BROKEN at record #4: line missing\n"))
        #expect(code == 2)
    }

    @Test func theFirstBreakIsNamed() throws {
        try replica(records: 6)
        try tamper("DELETE FROM audit_log WHERE seq = 5")
        try tamper("UPDATE audit_log SET at = '2026-11-09T10:00:00.000Z' WHERE seq = 2")
        #expect(try screen().text.hasPrefix("audit trail BROKEN at record #2: line altered\n"))
    }
}
