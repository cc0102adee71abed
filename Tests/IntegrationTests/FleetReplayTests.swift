import Foundation
import SyncModel
import SyncTestSupport
import Testing

private let markerSystem = "https://ehr-sync.org/test/fleet"

// Practices coming back together after an outage, against a vendor of limited capacity (the
// fault proxy's simulated vendor in front of sekmet): both daemons drain their queues, neither
// starves, every change reaches the EHR exactly once (#16). The fleet itself is `make
// bench-fleet`.
@Suite(.serialized) struct FleetReplayTests {
    @Test(arguments: SimulatedVendor.Rejection.allCases)
    func twoDaemonsDrainThroughACapacityLimitedVendor(_ rejection: SimulatedVendor.Rejection) async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port, rewriteUpstreamURLs: true)
        let sync = "resource_types = [\"Patient\", \"Observation\"]\npoll_interval = 5\nsweep_interval = 86400"
        let daemons = try (0..<2).map { _ in
            try DaemonFixture(
                baseURL: proxy.url("/fhir"), sync: sync, ehr: "requests_per_second = 50",
                extra: "[replay]\nstart_jitter = 10", localAPIAuthor: "dr.test")
        }
        for daemon in daemons { try daemon.start() }
        for daemon in daemons {
            #expect(
                DaemonFixture.waitUntil(timeout: 180) { (try? daemon.status())?.state == "online" },
                "never online; log:\n\(daemon.log.suffix(2000))")
        }
        proxy.setMode(.refuseConnections)
        for daemon in daemons {
            #expect(DaemonFixture.waitUntil(timeout: 60) { (try? daemon.status())?.state == "outage" })
        }
        proxy.setMode(.status(503))

        // Each practice queues changes during the outage.
        let patient = try #require(try await server.all("Patient").keys.sorted().first)
        let perDaemon = 20
        for (d, daemon) in daemons.enumerated() {
            let api = try #require(daemon.localAPI).client()
            for n in 0..<perDaemon {
                let created = try await api.create([
                    "resourceType": "Observation", "status": "final",
                    "code": ["coding": [["system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"]]],
                    "subject": ["reference": "Patient/\(patient)"], "effectiveDateTime": "2026-12-08T09:30:00Z",
                    "valueQuantity": ["value": 60 + n, "unit": "/min"],
                    "identifier": [["system": markerSystem, "value": "\(rejection.rawValue)-\(d)-\(n)"]],
                ])
                #expect(created.status == 201)
            }
        }

        // The vendor returns with a small capacity and a short queue: they must share it.
        let vendor = SimulatedVendor(capacity: 6, maxQueue: 0.3, rejection: rejection, retryAfter: 1)
        proxy.setPersonality(vendor.rule)
        proxy.setMode(.passThrough)
        var drainedAt: [Double?] = [nil, nil]
        let done = DaemonFixture.waitUntil(timeout: 300) {
            for (d, daemon) in daemons.enumerated() where drainedAt[d] == nil {
                guard let s = try? daemon.status() else { continue }
                if s.state == "online", s.outboxPending + s.outboxWaiting + s.outboxParked + s.conflicts == 0 {
                    drainedAt[d] = vendor.elapsed
                }
            }
            return drainedAt.allSatisfy { $0 != nil }
        }
        #expect(done, "drained at \(drainedAt); logs:\n\(daemons.map { $0.log.suffix(1500) })")
        for daemon in daemons { #expect(daemon.stop(signal: SIGTERM) == 0) }
        proxy.setPersonality(nil)

        // Exactly once each.
        for d in 0..<2 {
            for n in 0..<perDaemon {
                let found = try await server.search(
                    "Observation?identifier=\(markerSystem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)%7C\(rejection.rawValue)-\(d)-\(n)"
                )
                #expect(found.count == 1, "change \(d)-\(n) is on the EHR \(found.count) times")
            }
        }
        // Neither starved: the later finished within a reasonable multiple of the earlier
        // (both start within the reconnection window).
        if let a = drainedAt[0], let b = drainedAt[1] {
            #expect(max(a, b) <= 3 * min(a, b) + 15, "drained at \(a) s and \(b) s")
        }
        print(
            "fleet test (\(rejection.rawValue)): drained at \(drainedAt.map { $0.map { String(format: "%.1f", $0) } ?? "-" }) s, "
                + "admitted \(vendor.admitted), rejected \(vendor.rejected) (share \(String(format: "%.3f", vendor.rejectedShare)))"
        )
        try await proxy.stop()
    }
}
