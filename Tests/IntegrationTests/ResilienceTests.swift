import Foundation
import SyncModel
import SyncTestSupport
import Testing

/// Data requests of the initial sync or a cycle: search pages and export files (not
/// metadata, type probes, export status polls, history or sweeps).
func isDataRequest(_ uri: String) -> Bool {
    (uri.contains("_count=") && !uri.contains("_elements=") && !uri.contains("_history") && !uri.hasSuffix("?_count=1"))
        || uri.contains("bulk-files")
}

@Suite(.serialized) struct ResilienceTests {
    let types: [String]
    let needles: [String]

    init() throws {
        types = try TestData.loadOrder("small")
        needles = try PHINeedles(lines: try TestData.allLines("small")).all
    }

    func expectNoPHI(in fixture: DaemonFixture) {
        #expect(PHINeedles.find(needles, in: Array(fixture.log.utf8)).isEmpty, "PHI in the daemon's log")
    }

    @Test(arguments: ["off", "auto"])
    func fiveKillsDuringTheInitialSyncRefetchAtMostOnePageOrFileEach(bulkExport: String) async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"),
            sync: "resource_types = \(typeList(types))\npage_size = 100\nbulk_export = \"\(bulkExport)\"",
            ehr: "requests_per_second = 20")
        var kills = 0
        for k in 1...5 {
            let threshold = (bulkExport == "off" ? 9 : 4) * k
            try fixture.start()
            let reached = DaemonFixture.waitUntil(timeout: 120, interval: 0.005) {
                proxy.requests.filter { isDataRequest($0.uri) }.count >= threshold || !fixture.isRunning
            }
            #expect(reached)
            guard fixture.isRunning else { break }
            fixture.stop(signal: SIGKILL)
            kills += 1
        }
        #expect(kills == 5, "the initial sync finished before five kills")
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(2000))")
        try await assertReplicaEqualsServer(fixture, ServerClient(baseURL: fhir.baseURL), types: types)

        let data = proxy.requests.filter { isDataRequest($0.uri) }.map(\.uri)
        let refetched = data.count - Set(data).count
        let repeated = Dictionary(grouping: data, by: { $0 }).filter { $0.value.count > 1 }
            .map { "\($0.value.count)× \($0.key.prefix(60))" }
        expectNoPHI(in: fixture)
        #expect(refetched <= kills, "refetched \(refetched) pages or files for \(kills) kills: \(repeated)")
        try await proxy.stop()
    }

    @Test func convergesThroughResetsTruncationsAnd503And429HonouringRetryAfter() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"),
            sync: "resource_types = \(typeList(types))\npage_size = 100\nbulk_export = \"off\"")
        // Each fault hits pages of a different type, twice in a row: the same page fails, then
        // succeeds on a later attempt.
        func pages(of type: String) -> @Sendable (ProxyRequest) -> Bool {
            { $0.uri.contains("/fhir/\(type)?") && $0.uri.contains("_count=") }
        }
        proxy.inject(.resetMidBody(afterBytes: 2000), times: 2, when: pages(of: "Patient"))
        proxy.inject(.truncatedBody(afterBytes: 3000), times: 2, when: pages(of: "Observation"))
        proxy.inject(.status(503, retryAfter: 2), times: 2, when: pages(of: "Encounter"))
        proxy.inject(.status(429, retryAfter: 1), times: 2, when: pages(of: "Condition"))
        let status = try fixture.runOnce()
        #expect(status == 0, "daemon log:\n\(fixture.log.suffix(2000))")
        #expect(proxy.pendingInjections == 0)
        try await assertReplicaEqualsServer(fixture, ServerClient(baseURL: fhir.baseURL), types: types)

        // Every retry after a Retry-After answer waited at least that long.
        let log = proxy.requests
        var checked = 0
        for (i, record) in log.enumerated() {
            guard case .status(let code, let retryAfter?) = record.fault, record.injected else { continue }
            let retry = try #require(log[(i + 1)...].first { $0.uri == record.uri }, "no retry after \(code)")
            let waited = record.received.duration(to: retry.received)
            #expect(waited >= .seconds(retryAfter) - .milliseconds(50), "waited \(waited) after \(code)")
            checked += 1
        }
        #expect(checked == 4)
        expectNoPHI(in: fixture)
        try await proxy.stop()
    }

    @Test func aServerRestoredFromAnOlderCopyIsHeldNotApplied() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(types))\nsweep_interval = 0")
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(2000))")
        let backup = try fhir.snapshot()

        let server = ServerClient(baseURL: fhir.baseURL)
        let conditions = try await server.all("Condition")
        let edited = conditions.keys.sorted().prefix(10)
        for id in edited {
            var c = conditions[id]!
            c["clinicalStatus"] = [
                "coding": [["system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"]]
            ]
            #expect(try await server.put(c) < 300)
        }
        for n in 0..<3 {
            var c = conditions[edited.first!]!
            c["id"] = "after-backup-\(n)"
            #expect(try await server.put(c) < 300)
        }
        #expect(try fixture.runOnce() == 0)
        try await fhir.restore(from: backup)

        try fixture.start()
        let held = DaemonFixture.waitUntil(timeout: 120) { (try? fixture.status())??.heldChanges ?? 0 >= 13 }
        #expect(held, "daemon log:\n\(fixture.log.suffix(2000))")
        let status = try #require(try fixture.status())
        #expect(status.heldRegressions == 13)
        #expect(status.state == "online")
        #expect(fixture.stop(signal: SIGTERM) == 0)
        #expect(fixture.log.contains("server rollback"))
        expectNoPHI(in: fixture)

        let replica = try fixture.openReplica()
        defer { replica.close() }
        for id in edited {
            #expect(try replica.records.resource(type: "Condition", id: id)?.versionId == "2")
        }
        for n in 0..<3 {
            #expect(try replica.records.resource(type: "Condition", id: "after-backup-\(n)") != nil)
        }
    }

    @Test func anOutageIsDetectedShownAndLeftOnlyAfterAHealthProbe() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"), sync: "resource_types = [\"Patient\"]\npoll_interval = 1",
            ehr: "connect_timeout = 2")
        try fixture.start()
        #expect(DaemonFixture.waitUntil(timeout: 60) { (try? fixture.status())??.state == "online" })

        proxy.setMode(.refuseConnections)
        let down = DaemonFixture.waitUntil(timeout: 120) { (try? fixture.status())??.state == "outage" }
        #expect(down, "log:\n\(fixture.log.suffix(1500))")
        let status = try #require(try fixture.status())
        #expect(status.failingSince != nil)
        let text = try fixture.syncctl(["--socket", fixture.socketPath, "status"])
        #expect(text.status == 2)
        #expect(text.output.contains("OUTAGE — the EHR is unreachable since"))

        proxy.setMode(.passThrough)
        let up = DaemonFixture.waitUntil(timeout: 180) { (try? fixture.status())??.state == "online" }
        #expect(up, "log:\n\(fixture.log.suffix(1500))")
        #expect(fixture.stop(signal: SIGTERM) == 0)
        let log = fixture.log
        for target in ["to=degraded", "to=outage", "to=recovering", "to=online"] {
            #expect(log.contains(target), "transition \(target) not logged")
        }
        expectNoPHI(in: fixture)
        try await proxy.stop()
    }
}
