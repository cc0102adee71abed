import Foundation
import SyncModel
import SyncTestSupport
import Testing

// Power cuts, not just crashes: the daemon's state directory is on a file system that drops
// every write not yet fsynced when the test cuts the power (Tests/harness/powercut_fs.py).
// Cuts fall at seeded random points while local changes arrive during an outage and while
// they replay. What the local API acknowledged must be on the EHR exactly once at the end,
// and the replica must verify.

private let markerSystem = "https://ehr-sync.org/test/marker"

@Suite(.serialized) struct PowerLossTests {
    @Test(.enabled(if: PowerCutFS.available, "needs root, /dev/fuse and libfuse2 (apt-get install fuse3 libfuse2)"))
    func acknowledgedLocalChangesSurvivePowerCutsDuringWritesAndReplay() async throws {
        let seed =
            ProcessInfo.processInfo.environment["EHR_SYNC_POWERCUT_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 1...UInt64(UInt32.max))
        var random = SeededGenerator(seed: seed)
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let server = ServerClient(baseURL: fhir.baseURL)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"),
            sync: "resource_types = [\"Patient\", \"Encounter\", \"Observation\"]\npoll_interval = 1\noverlap = 10",
            ehr: "requests_per_second = 1000\nconnect_timeout = 2", extra: "[replay]\nstart_jitter = 0",
            localAPIAuthor: "dr.test")
        try await PowerCutFS.prepare()
        let fs = try PowerCutFS(mountPoint: fixture.stateDir)
        try fs.mount()
        defer { fs.unmount() }
        // The cut is real: bytes written but not fsynced are gone after it, fsynced ones stay.
        let probe = fixture.stateDir + "/cut-probe"
        #expect(FileManager.default.createFile(atPath: probe, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: probe))
        try handle.write(contentsOf: Data("durable".utf8))
        try handle.synchronize()
        try handle.write(contentsOf: Data(" and lost".utf8))
        try handle.close()
        #expect(try String(contentsOfFile: probe, encoding: .utf8) == "durable and lost")
        try fs.cut()
        #expect(try String(contentsOfFile: probe, encoding: .utf8) == "durable")
        try FileManager.default.removeItem(atPath: probe)
        let api = try #require(fixture.localAPI).client()
        let patient = try #require(try await server.all("Patient").keys.sorted().first)

        func powerCut() throws {
            fixture.stop(signal: SIGKILL)
            try fs.cut()
            try fixture.start()
        }
        func status(_ condition: (StatusReport) -> Bool, timeout: Double = 120) -> Bool {
            DaemonFixture.waitUntil(timeout: timeout) { (try? fixture.status()).flatMap { $0 }.map(condition) ?? false }
        }

        // The first copy, with two cuts in the middle of it.
        try fixture.start()
        for _ in 0..<2 {
            #expect(status({ $0.resources > 0 || $0.initialSyncComplete }), "seed \(seed): no progress")
            try powerCut()
        }
        #expect(status({ $0.initialSyncComplete && $0.state == "online" }, timeout: 180), "seed \(seed)")

        // The EHR goes dark; 24 local creates, each acknowledged, with cuts at random points.
        proxy.setMode(.refuseConnections)
        #expect(status({ $0.state == "outage" }, timeout: 60), "seed \(seed): outage not noticed")
        var acknowledged: [String] = []
        let creates = ProcessInfo.processInfo.environment["EHR_SYNC_POWERCUT_CREATES"].flatMap(Int.init) ?? 24
        for n in 0..<creates {
            let marker = "powercut-\(seed)-\(n)"
            let created = try await api.create([
                "resourceType": "Observation", "status": "final",
                "code": ["coding": [["system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"]]],
                "subject": ["reference": "Patient/\(patient)"], "effectiveDateTime": "2026-12-07T09:30:00Z",
                "valueQuantity": ["value": 60 + n, "unit": "/min"],
                "identifier": [["system": markerSystem, "value": marker]],
            ])
            #expect(created.status == 201, "seed \(seed): local create \(n) answered \(created.status)")
            if created.status == 201 { acknowledged.append(marker) }
            if Int.random(in: 0..<4, using: &random) == 0 {
                try powerCut()
                #expect(status({ $0.outboxPending + $0.outboxWaiting == acknowledged.count }), "seed \(seed)")
            }
        }
        // Whatever the cuts, every acknowledged change is still queued.
        #expect(status({ $0.outboxPending + $0.outboxWaiting == acknowledged.count }), "seed \(seed): queue lost")

        // The EHR returns; cuts while the queue replays.
        proxy.setMode(.passThrough)
        for _ in 0..<3 {
            let target = Int.random(in: 1...max(1, acknowledged.count - 1), using: &random)
            let reached = DaemonFixture.waitUntil(timeout: 120) {
                let left = (try? fixture.status()).flatMap { $0 }.map { $0.outboxPending + $0.outboxWaiting }
                return left.map { $0 <= acknowledged.count - target } ?? false
            }
            if reached { try powerCut() }
        }
        #expect(
            status(
                { $0.state == "online" && $0.outboxPending + $0.outboxWaiting + $0.outboxParked == 0 }, timeout: 180),
            "seed \(seed): the queue did not drain; log:\n\(fixture.log.suffix(3000))")
        let verify = try fixture.ctl(["verify"])
        #expect(verify.status == 0, "seed \(seed): \(verify.output)")
        #expect(fixture.stop(signal: SIGTERM) == 0)

        // Exactly once on the EHR, each of them.
        let encoded = markerSystem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        var lost = 0
        var duplicated = 0
        for marker in acknowledged {
            let found = try await server.search("Observation?identifier=\(encoded)%7C\(marker)")
            if found.isEmpty { lost += 1 }
            if found.count > 1 { duplicated += 1 }
        }
        print(
            "powercut: cuts \(fs.cuts), acknowledged \(acknowledged.count), lost \(lost), duplicates \(duplicated) (seed \(seed))"
        )
        #expect(lost == 0 && duplicated == 0, "seed \(seed): lost \(lost), duplicated \(duplicated)")
        #expect(fs.cuts >= 5, "seed \(seed): only \(fs.cuts) cuts")
        // The first cut was the probe's.
        try await proxy.stop()
    }
}
