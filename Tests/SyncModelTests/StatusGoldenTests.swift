import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// `syncctl status` screens, compared with `testdata/status-<case>/stdout` (Litestream style).
/// Regenerate with `EHR_SYNC_UPDATE_GOLDEN=1 swift test --filter StatusGolden`.
@Suite struct StatusGoldenTests {
    static let now = FHIRInstant.parse("2026-11-29T10:00:00Z")!

    static let cases: [(String, StatusReport)] = [
        (
            "online",
            StatusReport(
                state: "online", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:59:30.000Z",
                dataAsOf: "2026-11-29T09:59:00.000Z",
                keySource: "systemd credential replica-key (/run/credentials/ehr-syncd.service/replica-key)")
        ),
        (
            "initial-sync",
            StatusReport(
                state: "initial-sync", resources: 1200, initialSyncComplete: false, lastSyncAt: nil,
                initialSync: .init(mode: "export-system", done: 1200, total: 5828, types: []),
                keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "outage",
            StatusReport(
                state: "outage", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-28T18:00:00.000Z",
                dataAsOf: "2026-11-28T17:59:00.000Z", failingSince: "2026-11-28T18:01:00.000Z",
                lastError: "EHR unavailable (_history): connection refused",
                keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "held",
            StatusReport(
                state: "online", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:50:00.000Z",
                dataAsOf: "2026-11-29T09:49:00.000Z", heldChanges: 13, heldRegressions: 10, heldMassDeletions: 3,
                rejectedResources: 2, keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "degraded",
            StatusReport(
                state: "degraded", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:55:00.000Z",
                dataAsOf: "2026-11-29T09:54:00.000Z", failingSince: "2026-11-29T09:58:30.000Z",
                lastError: "EHR answered HTTP 503 (_history)", keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "recovering",
            StatusReport(
                state: "recovering", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-28T18:00:00.000Z",
                dataAsOf: "2026-11-28T17:59:00.000Z", failingSince: "2026-11-28T18:01:00.000Z",
                keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "starting",
            StatusReport(
                state: "starting", resources: 0, initialSyncComplete: false, lastSyncAt: nil,
                keySource: "key file /etc/ehr-sync/replica.key")
        ),
        (
            "paused",
            StatusReport(
                state: "paused", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T07:00:00.000Z",
                dataAsOf: "2026-11-29T06:59:00.000Z", keySource: "key file /etc/ehr-sync/replica.key")
        ),
        ("outbox-pending", outbox(pending: 3, waiting: 1)),
        ("outbox-review", outbox(pending: 3, waiting: 1, parked: 1, conflicts: 2)),
        ("outbox-conflicts-only", outbox(conflicts: 1)),
    ]

    /// Online, with local changes not yet on the EHR.
    static func outbox(pending: Int = 0, waiting: Int = 0, parked: Int = 0, conflicts: Int = 0) -> StatusReport {
        var report = StatusReport(
            state: "online", resources: 5828, initialSyncComplete: true, lastSyncAt: "2026-11-29T09:59:30.000Z",
            dataAsOf: "2026-11-29T09:59:00.000Z", keySource: "key file /etc/ehr-sync/replica.key")
        report.outboxPending = pending
        report.outboxWaiting = waiting
        report.outboxParked = parked
        report.conflicts = conflicts
        return report
    }

    @Test(arguments: cases.map(\.0))
    func screenMatchesGolden(name: String) throws {
        let report = try #require(Self.cases.first { $0.0 == name }?.1)
        let text = report.text(now: Self.now)
        let golden = try GoldenFile.expected("status-\(name)", current: text)
        #expect(text == golden)
    }

    @Test func exitCodesFollowTheMonitoringConvention() throws {
        let codes = Dictionary(uniqueKeysWithValues: Self.cases.map { ($0.0, $0.1.exitCode) })
        #expect(
            codes == [
                "online": 0, "initial-sync": 1, "outage": 2, "held": 1, "paused": 1, "degraded": 1, "recovering": 1,
                "starting": 1, "outbox-pending": 0, "outbox-review": 1, "outbox-conflicts-only": 1,
            ])
    }

    @Test func jsonCarriesTheInterfaceFieldsWithNulls() throws {
        let data = try JSONEncoder().encode(Self.cases[1].1)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["state"] as? String == "initial-sync")
        #expect(object["resources"] as? Int == 1200)
        #expect(object["initialSyncComplete"] as? Bool == false)
        #expect(object.keys.contains("lastSyncAt"))
        #expect(object["lastSyncAt"] is NSNull)
        let decoded = try JSONDecoder().decode(StatusReport.self, from: data)
        #expect(decoded == Self.cases[1].1)
    }
}
