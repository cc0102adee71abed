import SyncModel
import SyncTestSupport
import Testing

/// Unusual reading: more than `threshold` distinct patients by one account within the window.
@Suite struct AccessMonitorTests {
    @Test func theThresholdCountsDistinctPatientsOfOneAccount() {
        var monitor = AccessMonitor(threshold: 3, window: 600)
        for n in 0..<10 { #expect(monitor.record(account: "a", patient: "p1", now: Double(n)) == nil) }
        for p in ["p2", "p3"] { #expect(monitor.record(account: "a", patient: p, now: 20) == nil) }
        #expect(monitor.record(account: "b", patient: "p4", now: 21) == nil, "another account counts apart")
        let alert = monitor.record(account: "a", patient: "p4", now: 22)
        #expect(alert?.account == "a" && alert?.patients == 4 && alert?.windowSeconds == 600 && alert?.at == 22)
        #expect(monitor.record(account: "a", patient: "p5", now: 30) == nil, "once per window")
        #expect(monitor.activeAlerts(now: 100).count == 1)
    }

    @Test func patientsOpenedBeforeTheWindowNoLongerCount() {
        var monitor = AccessMonitor(threshold: 2, window: 100)
        monitor.record(account: "a", patient: "p1", now: 0)
        monitor.record(account: "a", patient: "p2", now: 10)
        // At 109, p1 (opened at 0) is out of the window: p2 and p3 make 2, not more.
        #expect(monitor.record(account: "a", patient: "p3", now: 109) == nil)
        #expect(monitor.distinctPatients(account: "a") == 2)
        #expect(monitor.record(account: "a", patient: "p4", now: 109) != nil)
    }

    @Test func openingAPatientAgainKeepsItInTheWindow() {
        var monitor = AccessMonitor(threshold: 2, window: 100)
        monitor.record(account: "a", patient: "p1", now: 0)
        monitor.record(account: "a", patient: "p2", now: 10)
        monitor.record(account: "a", patient: "p1", now: 95)
        // At 150: p1 (95) counts, p2 (10) does not.
        #expect(monitor.record(account: "a", patient: "p3", now: 150) == nil)
        #expect(monitor.distinctPatients(account: "a") == 2)
        #expect(monitor.record(account: "a", patient: "p4", now: 151) != nil)
    }

    /// The incremental count equals a plain recount of the window on random sequences.
    @Test(arguments: 1...20) func matchesARecountOfTheWindow(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let window = 50.0
        var monitor = AccessMonitor(threshold: 1_000_000, window: window)
        var log: [(String, String, Double)] = []
        var now = 0.0
        for _ in 0..<3000 {
            now += Double(rng.next() % 3)
            let account = "acct\(rng.next() % 3)"
            let patient = "p\(rng.next() % 40)"
            monitor.record(account: account, patient: patient, now: now)
            log.append((account, patient, now))
            let expected = Set(log.filter { $0.0 == account && now - $0.2 < window }.map(\.1)).count
            #expect(monitor.distinctPatients(account: account) == expected)
        }
    }
}
