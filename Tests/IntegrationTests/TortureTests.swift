import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// `make torture` (#14): the real daemon SIGKILLed at random moments of every phase, from a
/// seeded schedule, against the real EHR behind the fault proxy; after every phase the
/// invariants hold: the replica equals the server, `syncctl verify` passes, every
/// acknowledged local change is on the EHR exactly once, nothing waits forever.
///
/// `EHR_SYNC_TORTURE_KILLS` (total, spread over the phases; the default is the short form run
/// by `make test`) and `EHR_SYNC_TORTURE_SEED` (printed, to replay a failure).
@Suite(.serialized) struct TortureTests {
    static let types = ["Patient", "Encounter", "Observation", "Condition"]
    static let markerSystem = "https://ehr-sync.org/test/torture"
    static let phases = [
        "initial pull (search)", "initial pull (export)", "incremental pull", "local writes", "replay",
        "conflict resolution", "re-seal",
    ]

    /// The run's schedule and its findings.
    final class Run: @unchecked Sendable {
        var random: SeededGenerator
        let perPhase: Int
        var kills: [String: Int] = [:]
        var lost: [String] = []
        var duplicates: [String] = []
        var stuck: [String] = []

        init(seed: UInt64, total: Int) {
            random = SeededGenerator(seed: seed)
            perPhase = max(1, (total + TortureTests.phases.count - 1) / TortureTests.phases.count)
        }

        func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
        var totalKills: Int { kills.values.reduce(0, +) }
    }

    static func marker(_ value: String) -> [[String: Any]] { [["system": markerSystem, "value": value]] }

    static func token(_ value: String = "") -> String {
        let allowed = CharacterSet.alphanumerics.union(.init(charactersIn: "-._~"))
        return "\(markerSystem)|\(value)".addingPercentEncoding(withAllowedCharacters: allowed) ?? markerSystem
    }

    static func fixture(_ baseURL: String, export: Bool) throws -> DaemonFixture {
        try DaemonFixture(
            baseURL: baseURL,
            sync:
                "resource_types = \(typeList(types))\npage_size = 100\npoll_interval = 3600\noverlap = 10\n"
                + "bulk_export = \"\(export ? "auto" : "off")\"",
            ehr: "requests_per_second = 1000\nconnect_timeout = 2",
            extra: "[replay]\nstart_jitter = 0", localAPIAuthor: "dr.torture")
    }

    /// Waits for the daemon's status to meet `condition`.
    /// Kills the daemon at a random moment (0–`spread` µs from now) and counts it.
    static func kill(_ fixture: DaemonFixture, _ run: Run, phase: String, spread: Int = 20_000) {
        usleep(UInt32(run.int(0...spread)))
        guard fixture.isRunning else { return }
        fixture.stop(signal: SIGKILL)
        run.kills[phase, default: 0] += 1
    }

    /// The invariants of the mirror: `syncctl verify` passes on the running daemon, and (once
    /// stopped and brought up to date) the replica equals the server.
    static func checkMirror(_ fixture: DaemonFixture, _ server: ServerClient, _ run: Run, phase: String) async throws {
        if !fixture.isRunning { try fixture.start() }
        let answering = fixture.waitForStatus(timeout: 60) { _ in true }
        #expect(answering != nil, "\(phase): the daemon does not answer; log:\n\(fixture.log.suffix(2000))")
        let verify = try fixture.ctl(["verify"])
        #expect(verify.status == 0, "\(phase): syncctl verify failed:\n\(verify.output)")
        if verify.status != 0 { run.stuck.append("\(phase): verify") }
        fixture.stop()
        #expect(try fixture.runOnce() == 0, "\(phase): not up to date; log:\n\(fixture.log.suffix(2000))")
        try await assertReplicaEqualsServer(fixture, server, types: types)
    }

    @Test func killsInEveryPhaseLoseNothingDuplicateNothingAndLeaveNothingStuck() async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = environment["EHR_SYNC_TORTURE_KILLS"].flatMap(Int.init) ?? 14
        let seed = environment["EHR_SYNC_TORTURE_SEED"].flatMap { UInt64($0) } ?? 0x7007_2026
        print("torture: seed \(seed), kills \(total) (EHR_SYNC_TORTURE_SEED=\(seed) replays it)")
        let run = Run(seed: seed, total: total)

        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let server = ServerClient(baseURL: fhir.baseURL)
        func dataRequests() -> Int { proxy.requests.filter { isDataRequest($0.uri) }.count }

        // 1–2. The first copy, by search and by export, killed every few pages or files; when
        // a copy completes, it is checked and started again from nothing.
        var fixture = try Self.fixture(proxy.url("/fhir"), export: false)
        for (index, export) in [false, true].enumerated() {
            let phase = Self.phases[index]
            fixture = try Self.fixture(proxy.url("/fhir"), export: export)
            while run.kills[phase, default: 0] < run.perPhase {
                try fixture.start()
                let threshold = dataRequests() + run.int(1...(export ? 3 : 8))
                _ = DaemonFixture.waitUntil(timeout: 60, interval: 0.002) {
                    dataRequests() >= threshold || !fixture.isRunning
                        || ((try? fixture.status())??.initialSyncComplete ?? false)
                }
                let complete = ((try? fixture.status())??.initialSyncComplete ?? false)
                if complete {
                    try await Self.checkMirror(fixture, server, run, phase: phase)
                    try FileManager.default.removeItem(atPath: fixture.stateDir)
                    continue
                }
                Self.kill(fixture, run, phase: phase)
            }
            try await Self.checkMirror(fixture, server, run, phase: phase)
        }

        // 3. Incremental pulls: the EHR changes (updates, deletions, new records), a cycle runs,
        // the daemon is killed while it reads the changes.
        let phase3 = Self.phases[2]
        var observations = try await server.all("Observation").keys.sorted()
        var round = 0
        while run.kills[phase3, default: 0] < run.perPhase {
            try fixture.start()
            _ = fixture.waitForStatus { $0.state == "online" }
            for k in 0..<5 {
                let id = observations[(round * 7 + k) % observations.count]
                var resource = try #require(try await server.all("Observation")[id])
                resource["status"] = "amended"
                resource["note"] = [["text": "incremental \(round)-\(k)"]]
                resource["meta"] = nil
                #expect(try await server.put(resource) < 300)
            }
            let doomed = observations.remove(at: (round * 13) % observations.count)
            #expect(try await server.delete("Observation", doomed) < 300)
            for k in 0..<2 {
                #expect(
                    try await server.put([
                        "resourceType": "Observation", "id": "torture-new-\(round)-\(k)", "status": "final",
                        "code": ["text": "incremental"], "subject": ["reference": "Patient/\(observations.count)"],
                    ]) < 300)
            }
            let before = proxy.requests.count
            #expect(try fixture.ctl(["sync-now"]).status == 0)
            _ = DaemonFixture.waitUntil(timeout: 30, interval: 0.002) {
                proxy.requests.count >= before + run.int(1...4) || !fixture.isRunning
            }
            Self.kill(fixture, run, phase: phase3, spread: 5_000)
            round += 1
        }
        try await Self.checkMirror(fixture, server, run, phase: phase3)

        // 4. Local writes arriving while the EHR is out, the daemon killed among them; what the
        // local API acknowledged is kept to be found on the EHR later.
        let phase4 = Self.phases[3]
        let api = try #require(fixture.localAPI).client()
        var acknowledgedCreates: [String] = []  // markers
        var acknowledgedUpdates: [String: String] = [:]  // observation id → last note acknowledged
        let patients = try await server.all("Patient").keys.sorted()
        observations = try await server.all("Observation").keys.sorted()
        var written = 0
        /// Up to `count` local writes (3 creates to 1 update) from a task; the daemon is killed
        /// after `killAfter` µs when given. Returns once the writer stops.
        func localWrites(_ count: Int, killAfter: Int?, phase: String) async throws {
            if !fixture.isRunning { try fixture.start() }
            _ = await apiAnswers(api)
            let (base, targets, subjects) = (written, observations, patients)
            let writer = Task { () -> (creates: [String], updates: [(String, String)]) in
                var creates: [String] = []
                var updates: [(String, String)] = []
                for n in 0..<count {
                    let mark = "tw-\(base)-\(n)"
                    if n % 4 == 3 {
                        let id = targets[(base + n) % targets.count]
                        guard var resource = try? await api.read("Observation", id).json else { break }
                        resource["note"] = [["text": mark]]
                        resource["meta"] = nil
                        guard let answer = try? await api.update(resource) else { break }
                        if answer.status == 200 { updates.append((id, mark)) }
                    } else {
                        let resource: [String: Any] = [
                            "resourceType": "Observation", "status": "final", "code": ["text": "torture"],
                            "subject": ["reference": "Patient/\(subjects[n % subjects.count])"],
                            "identifier": Self.marker(mark),
                        ]
                        guard let answer = try? await api.create(resource) else { break }
                        if answer.status == 201 { creates.append(mark) }
                    }
                }
                return (creates, updates)
            }
            if let killAfter {
                usleep(UInt32(killAfter))
                Self.kill(fixture, run, phase: phase, spread: 0)
            }
            let acknowledged = await writer.value
            acknowledgedCreates += acknowledged.creates
            for (id, note) in acknowledged.updates { acknowledgedUpdates[id] = note }
            written += count
        }
        proxy.setMode(.refuseConnections)
        while run.kills[phase4, default: 0] < run.perPhase {
            try await localWrites(40, killAfter: run.int(5_000...150_000), phase: phase4)
        }
        #expect(!acknowledgedCreates.isEmpty)

        // 5. Replay: the EHR is back, the daemon killed every few writes to it; when the queue
        // drains before the schedule is done, more is queued with the EHR out again.
        let phase5 = Self.phases[4]
        func writes() -> Int { proxy.requests.filter { $0.method != "GET" }.count }
        func drained() -> Bool {
            ((try? fixture.status())?.map { $0.outboxPending + $0.outboxWaiting == 0 } ?? false)
        }
        proxy.setMode(.passThrough)
        while run.kills[phase5, default: 0] < run.perPhase {
            if !fixture.isRunning { try fixture.start() }
            let threshold = writes() + run.int(1...12)
            _ = DaemonFixture.waitUntil(timeout: 60, interval: 0.002) {
                writes() >= threshold || !fixture.isRunning || drained()
            }
            if drained() {
                proxy.setMode(.refuseConnections)
                try await localWrites(24, killAfter: nil, phase: phase5)
                proxy.setMode(.passThrough)
                continue
            }
            Self.kill(fixture, run, phase: phase5)
        }
        if !fixture.isRunning { try fixture.start() }
        let replayed = fixture.waitForStatus(timeout: 180) {
            $0.state == "online" && $0.outboxPending + $0.outboxWaiting == 0
        }
        if replayed == nil { run.stuck.append("replay did not drain") }
        for markValue in acknowledgedCreates {
            let found = try await server.search("Observation?identifier=\(Self.token(markValue))")
            if found.isEmpty { run.lost.append(markValue) }
            if found.count > 1 { run.duplicates.append(markValue) }
        }
        var now = try await server.all("Observation")
        for (id, note) in acknowledgedUpdates {
            let text = ((now[id]?["note"] as? [[String: Any]])?.first?["text"] as? String)
            if text != note { run.lost.append("update of an Observation (\(note))") }
        }

        // 6. Conflict resolution: records edited here and on the EHR, kept local one or two at
        // a time, the daemon killed between resolutions and during their replay; a new round of
        // conflicts when one is settled before the schedule is done.
        let phase6 = Self.phases[5]
        var keptLocal: [String: String] = [:]  // observation id → the local note kept
        var conflictRound = 0
        let candidates = Array(observations.suffix(60))
        while run.kills[phase6, default: 0] < run.perPhase {
            if !fixture.isRunning { try fixture.start() }
            _ = fixture.waitForStatus(timeout: 60) { $0.state == "online" }
            var open = (try fixture.outbox() ?? []).filter { $0.state == "conflict" }
            if open.isEmpty {
                conflictRound += 1
                #expect(try fixture.ctl(["pause"]).status == 0)
                let round = (0..<3).map { candidates[(conflictRound * 3 + $0) % candidates.count] }
                for (k, id) in round.enumerated() {
                    let note = "kept-local-\(conflictRound)-\(k)"
                    var local = try #require(try await api.read("Observation", id).json)
                    local["note"] = [["text": note]]
                    local["meta"] = nil
                    #expect(try await api.update(local).status == 200)
                    var remote = try #require(try await server.all("Observation")[id])
                    remote["note"] = [["text": "remote-\(conflictRound)-\(k)"]]
                    remote["meta"] = nil
                    #expect(try await server.put(remote) < 300)
                    keptLocal[id] = note
                }
                #expect(try fixture.ctl(["resume"]).status == 0)
                _ = fixture.waitForStatus(timeout: 120) { $0.conflicts == round.count }
                open = (try fixture.outbox() ?? []).filter { $0.state == "conflict" }
            }
            for entry in open.prefix(run.int(1...2)) {
                _ = try fixture.ctl(["conflicts", "resolve", "\(entry.seq)", "--keep", "local"])
            }
            Self.kill(fixture, run, phase: phase6, spread: 30_000)
        }
        if !fixture.isRunning { try fixture.start() }
        _ = fixture.waitForStatus(timeout: 60) { $0.state == "online" }
        for entry in (try fixture.outbox() ?? []) where entry.state == "conflict" {
            _ = try fixture.ctl(["conflicts", "resolve", "\(entry.seq)", "--keep", "local"])
        }
        let resolved = fixture.waitForStatus(timeout: 180) {
            $0.state == "online" && $0.conflicts == 0 && $0.outboxPending + $0.outboxWaiting == 0
        }
        if resolved == nil { run.stuck.append("conflicts did not settle") }
        now = try await server.all("Observation")
        for (id, note) in keptLocal {
            let text = ((now[id]?["note"] as? [[String: Any]])?.first?["text"] as? String)
            if text != note { run.lost.append("a resolution that kept \(note)") }
        }

        // 7. Re-seal: a re-key, the daemon killed while it re-seals; a new re-key when one ends.
        let phase7 = Self.phases[6]
        var keyNumber = 0
        while run.kills[phase7, default: 0] < run.perPhase {
            if !fixture.isRunning { try fixture.start() }
            _ = fixture.waitForStatus(timeout: 60) { _ in true }
            if (try? fixture.status())??.reencryption == nil {
                keyNumber += 1
                let file = fixture.dir.file("torture-\(keyNumber).key")
                #expect(try fixture.syncctl(["key", "generate", file]).status == 0)
                let rotated = try fixture.ctl(["key", "rotate", "--reencrypt", file])
                #expect(rotated.status == 0, "\(rotated.output)")
                // The operator's part: [key] points at the new key from now on.
                try FileManager.default.removeItem(atPath: fixture.dir.file("replica.key"))
                try FileManager.default.copyItem(atPath: file, toPath: fixture.dir.file("replica.key"))
            }
            Self.kill(fixture, run, phase: phase7, spread: 60_000)
        }
        if !fixture.isRunning { try fixture.start() }
        let resealed = fixture.waitForStatus(timeout: 120) { $0.reencryption == nil }
        if resealed == nil { run.stuck.append("re-seal did not finish") }
        let audit = try fixture.ctl(["audit", "verify"])
        #expect(audit.status == 0, "\(audit.output)")

        // Nothing stuck: every local change is done (or was resolved), nothing waits.
        let entries = try fixture.outbox(all: true) ?? []
        let open = entries.filter { !["done", "discarded"].contains($0.state) }
        if !open.isEmpty { run.stuck.append("\(open.count) outbox entries open: \(open.map(\.state))") }
        try await Self.checkMirror(fixture, server, run, phase: "end")

        for phase in Self.phases { print("torture phase \(phase): kills \(run.kills[phase, default: 0])") }
        print(
            "torture: kills \(run.totalKills), lost \(run.lost.count), duplicates \(run.duplicates.count), "
                + "stuck \(run.stuck.count)")
        #expect(run.lost.isEmpty, "seed \(seed): lost \(run.lost)")
        #expect(run.duplicates.isEmpty, "seed \(seed): duplicated \(run.duplicates)")
        #expect(run.stuck.isEmpty, "seed \(seed): stuck \(run.stuck)")
        #expect(run.totalKills >= total, "seed \(seed): only \(run.totalKills) kills")
        try await proxy.stop()
    }
}

/// Waits until the local API answers (the daemon is up).
private func apiAnswers(_ api: LocalAPIClient) async -> Bool {
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline {
        if (try? await api.request(.GET, "metadata"))?.status == 200 { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}
