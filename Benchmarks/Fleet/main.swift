// `make bench-fleet`: a fleet of practices comes back together after an outage, against a
// vendor of limited capacity (the fault proxy's ``SimulatedVendor`` in front of sekmet-fhir).
// Each practice is an in-process instance of the real engines (its own encrypted replica and
// outbox of K changes, its own FHIRClient with its rate controller, a Puller catch-up cycle and
// Reconciler replay passes), first with the adaptive controller, then in the same run with the
// former fixed-rate policy (token bucket at 20 req/s, 30 s start jitter). Prints the figures of
// both, the adaptive ones last, and last of all `fleet drain ratio vs ideal`.
//
// Options: --practices N (200) --changes K (100) --capacity C (100) --outage-hours H (72)
//          --rejection 429|503 (429) --policies adaptive,fixed
import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncStore
import SyncTestSupport

struct Options {
    var practices = 200
    var changes = 100
    var capacity = 100.0
    var outageHours = 72.0
    var rejection = SimulatedVendor.Rejection.tooManyRequests
    var policies: [RateController.Policy] = [.adaptive, .fixed]

    init(_ arguments: [String]) throws {
        var it = arguments.dropFirst().makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw BenchError("\(flag) needs a value") }
            switch flag {
            case "--practices": practices = try Self.int(flag, value, 1...5000)
            case "--changes": changes = try Self.int(flag, value, 1...100_000)
            case "--capacity": capacity = Double(try Self.int(flag, value, 1...100_000))
            case "--outage-hours": outageHours = Double(value) ?? outageHours
            case "--rejection":
                guard let r = SimulatedVendor.Rejection(rawValue: value) else {
                    throw BenchError("--rejection 429|503")
                }
                rejection = r
            case "--policies":
                policies = try value.split(separator: ",").map {
                    guard let p = RateController.Policy(rawValue: String($0)) else {
                        throw BenchError("--policies adaptive,fixed")
                    }
                    return p
                }
            default: throw BenchError("unknown option \(flag)")
            }
        }
    }

    static func int(_ flag: String, _ value: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(value), range.contains(n) else { throw BenchError("\(flag) must be in \(range)") }
        return n
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

func info(_ text: String) {
    let stamp = ISO8601DateFormatter().string(from: Date()).dropFirst(11).prefix(8)
    FileHandle.standardError.write(Data("[bench-fleet \(stamp)] \(text)\n".utf8))
}

func result(_ name: String, _ value: Double, _ unit: String = "", digits: Int = 2) {
    print("\(name): \(String(format: "%.\(digits)f", value))\(unit.isEmpty ? "" : " " + unit)")
    fflush(nil)
}

/// What one policy's run measured.
struct FleetFigures {
    var drain: Double
    var ideal: Double
    var rejectedShare: Double
    var fairness: Double
    var ownFairness: Double
    var peakOfferedRatio: Double
    var requests: Int
    var onServer: Int
    var duplicates: Int
    var missing: Int
}

let markerSystem = "https://ehr-sync.org/bench/fleet"
/// `FLEET_DEBUG=N`: practice N logs at debug level to stderr.
let debugPractice = ProcessInfo.processInfo.environment["FLEET_DEBUG"].flatMap(Int.init)
let debugLogger: Logger = {
    var l = Logger(label: "practice")
    l.logLevel = .debug
    return l
}()
let ceiling = 20.0

/// One simulated practice: the engines of a daemon over its own replica.
struct Practice: Sendable {
    let index: Int
    let directory: TemporaryDirectory
    let replica: Replica
    let client: FHIRClient
    let puller: Puller
    let reconciler: Reconciler

    static func make(
        index: Int, policy: RateController.Policy, baseURL: String, changes: Int, logger: Logger
    ) throws -> Practice {
        let directory = try TemporaryDirectory("fleet-\(index)")
        let replica = try Replica.open(directory: directory.path, kek: .generate(), keySource: "bench")
        let config = try SyncConfiguration.parse(
            """
            [ehr]
            base_url = "\(baseURL)"
            requests_per_second = \(ceiling)
            rate_control = "\(policy.rawValue)"
            [sync]
            resource_types = ["Practitioner", "Organization"]
            strategy = "search"
            [replica]
            state_dir = "\(directory.path)"
            [key]
            file = "\(directory.path)/unused.key"
            """, file: "fleet.toml")
        // A practice whose first copy was made before the outage: the catch-up is one
        // incremental cycle from an hour ago.
        let before = SyncCursor(serverTime: Date().timeIntervalSince1970 - 3600).text
        var state: [SyncStateKey: String?] = [
            .initialComplete: "1", .cursor: before,
            .lastSweep: SyncCursor(serverTime: Date().timeIntervalSince1970).text,
            .typesTracked: "1", .initialMode: "search",
        ]
        for type in ["Practitioner", "Organization"] { state[.initialNext(type)] = "done" }
        try replica.syncState.set(state)
        for n in 0..<changes {
            let note = """
                {"resourceType":"Observation","status":"final",\
                "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},\
                "subject":{"reference":"Patient/fleet-p-\(index)"},"effectiveDateTime":"2026-12-08T09:30:00Z",\
                "valueQuantity":{"value":\(60 + n % 40),"unit":"/min"},\
                "identifier":[{"system":"\(markerSystem)","value":"\(policy.rawValue)-\(index)-\(n)"}]}
                """
            _ = try replica.outbox.enqueue(
                LocalChange(
                    operation: .create, resourceType: "Observation", id: nil, resource: Data(note.utf8),
                    author: "dr.fleet"),
                isInFlight: { _ in false })
        }
        let client = FHIRClient(
            baseURL: URL(string: baseURL)!,
            rate: RateController.Settings(policy: policy, ceiling: config.ehr.requestsPerSecond),
            connectTimeout: 10, requestTimeout: 60, logger: logger)
        let puller = Puller(transport: client, replica: replica, settings: Puller.Settings(config), logger: logger)
        var settings = Reconciler.Settings()
        settings.concurrency = config.replay.concurrency
        settings.device = "ehr-sync bench-fleet"
        let reconciler = Reconciler(transport: client, replica: replica, settings: settings, logger: logger)
        return Practice(
            index: index, directory: directory, replica: replica, client: client, puller: puller,
            reconciler: reconciler)
    }

    /// Back from the outage: the wait, the catch-up cycle, replay passes until the queue is
    /// empty. Returns when this practice is done, with the wait it drew.
    func comeBack(policy: RateController.Policy, outage: Double) async -> Double {
        let wait: Double
        switch policy {
        case .adaptive:
            wait = ReconnectionJitter.wait(outage: outage, cap: 300, unit: Double.random(in: 0..<1))
            client.restartRate()
        case .fixed:
            wait = Double.random(in: 0...30)
        }
        try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
        var caughtUp = false
        while !caughtUp {
            do {
                try await puller.runCycle()
                caughtUp = true
            } catch {
                try? await Task.sleep(for: .seconds(2))
            }
        }
        while true {
            let pending = (try? replica.outbox.counts()[.pending]) ?? 0
            if pending == 0 { return wait }
            do {
                _ = try await reconciler.replay(conditionalCreate: { _ in true })
            } catch {
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    func close() async {
        await client.shutdown()
        replica.close()
    }
}

func runFleet(
    policy: RateController.Policy, options: Options, fhir: FHIRTestServer, server: ServerClient
) async throws -> FleetFigures {
    var logger = Logger(label: "bench-fleet")
    logger.logLevel = .critical
    let proxy = try await FaultProxy.start(upstreamPort: fhir.port, rewriteUpstreamURLs: true)
    let baseURL = proxy.url("/fhir")
    info("\(policy): preparing \(options.practices) practices × \(options.changes) queued changes")
    var practices: [Practice] = []
    for index in 0..<options.practices {
        practices.append(
            try Practice.make(
                index: index, policy: policy, baseURL: baseURL, changes: options.changes,
                logger: index == debugPractice ? debugLogger : logger))
    }
    let vendor = SimulatedVendor(capacity: options.capacity, rejection: options.rejection, retryAfter: 2)
    proxy.setPersonality(vendor.rule)
    info("\(policy): the vendor is back (capacity \(Int(options.capacity)) req/s)")
    let start = vendor.elapsed
    let outage = options.outageHours * 3600
    let clients = practices.map(\.client)
    let all = practices
    let monitor = Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(10))
            let rates = clients.map(\.currentRate.rate).sorted()
            let slow = all.compactMap { p -> String? in
                let pending = (try? p.replica.outbox.counts()[.pending]) ?? 0
                return pending > 0 ? "\(p.index):\(pending)@\(String(format: "%.2f", p.client.currentRate.rate))" : nil
            }
            if slow.count <= 8 { info("\(policy): left \(slow.joined(separator: " "))") }
            info(
                "\(policy): t = \(Int(vendor.elapsed - start)) s, admitted \(vendor.admitted), rejected \(vendor.rejected), "
                    + "rates min \(String(format: "%.2f", rates.first ?? 0)) median \(String(format: "%.2f", rates[rates.count / 2])) "
                    + "max \(String(format: "%.2f", rates.last ?? 0))")
        }
    }
    defer { monitor.cancel() }
    var waits = [Double](repeating: 0, count: practices.count)
    let finished = try await withThrowingTaskGroup(of: (Int, Double, Double).self) { group in
        for practice in practices {
            group.addTask {
                let wait = await practice.comeBack(policy: policy, outage: outage)
                return (practice.index, vendor.elapsed - start, wait)
            }
        }
        var times = [Double](repeating: 0, count: practices.count)
        var done = 0
        for try await (index, at, wait) in group {
            times[index] = at
            waits[index] = wait
            done += 1
            if done % max(1, practices.count / 10) == 0 {
                info("\(policy): \(done)/\(practices.count) drained at \(Int(at)) s")
            }
        }
        return times
    }
    let drain = finished.max() ?? 0
    let requests = vendor.admitted
    let sum = finished.reduce(0, +)
    let squares = finished.reduce(0) { $0 + $1 * $1 }
    let fairness = squares == 0 ? 1 : sum * sum / (Double(finished.count) * squares)
    // The same over each practice's own time to drain, from the end of its reconnection wait
    // (the wait is drawn at random on purpose; this shows whether any practice was starved).
    let own = zip(finished, waits).map { max($0 - $1, 0.001) }
    let ownSum = own.reduce(0, +)
    let ownFairness = ownSum * ownSum / (Double(own.count) * own.reduce(0) { $0 + $1 * $1 })
    let peak = Double(vendor.peakOffered(after: Int(start) + 60)) / options.capacity
    proxy.setPersonality(nil)
    for practice in practices { await practice.close() }
    try await proxy.stop()

    // Every change on the server exactly once.
    var seen: [String: Int] = [:]
    for index in 0..<options.practices {
        do {
            for resource in try await server.search("Observation?subject=Patient/fleet-p-\(index)") {
                for identifier in (resource["identifier"] as? [[String: Any]]) ?? []
                where identifier["system"] as? String == markerSystem {
                    if let value = identifier["value"] as? String, value.hasPrefix("\(policy.rawValue)-") {
                        seen[value, default: 0] += 1
                    }
                }
            }
        }
    }
    let expected = options.practices * options.changes
    let duplicates = seen.values.reduce(0) { $0 + max(0, $1 - 1) }
    let missing = expected - seen.count
    return FleetFigures(
        drain: drain, ideal: Double(requests) / options.capacity, rejectedShare: vendor.rejectedShare,
        fairness: fairness, ownFairness: ownFairness, peakOfferedRatio: peak, requests: requests, onServer: seen.count,
        duplicates: duplicates, missing: missing)
}

func report(_ f: FleetFigures, prefix: String) {
    result("\(prefix)fleet drain time", f.drain, "s", digits: 1)
    result("\(prefix)fleet ideal drain time", f.ideal, "s", digits: 1)
    result("\(prefix)fleet rejected share", f.rejectedShare, digits: 3)
    result("\(prefix)fleet fairness", f.fairness, digits: 3)
    result("\(prefix)fleet fairness of time to drain after the jitter", f.ownFairness, digits: 3)
    result("\(prefix)fleet peak offered load ratio", f.peakOfferedRatio, digits: 2)
    result("\(prefix)fleet requests admitted", Double(f.requests), digits: 0)
    result("\(prefix)fleet changes missing", Double(f.missing), digits: 0)
    result("\(prefix)fleet duplicates", Double(f.duplicates), digits: 0)
}

let options = try Options(CommandLine.arguments)
var load = [Double](repeating: 0, count: 3)
_ = getloadavg(&load, 3)
info(
    "N = \(options.practices) practices, K = \(options.changes) changes each, C = \(Int(options.capacity)) req/s, "
        + "outage \(options.outageHours) h, rejections \(options.rejection.rawValue); load average \(String(format: "%.2f", load[0]))"
)
let fhir = try await FHIRTestServer.start()
let server = ServerClient(baseURL: fhir.baseURL)
for index in 0..<options.practices {
    let status = try await server.put([
        "resourceType": "Patient", "id": "fleet-p-\(index)", "name": [["family": "Fleet", "given": ["P\(index)"]]],
    ])
    guard status < 300 else { throw BenchError("cannot create the practices' patients (HTTP \(status))") }
}
var figures: [RateController.Policy: FleetFigures] = [:]
for policy in options.policies {
    figures[policy] = try await runFleet(policy: policy, options: options, fhir: fhir, server: server)
}
fhir.stop()
print(
    "machine: load average \(String(format: "%.2f", load[0])) at start, N = \(options.practices), K = \(options.changes), C = \(Int(options.capacity)) req/s"
)
if let fixed = figures[.fixed] {
    report(fixed, prefix: "fixed-rate ")
    result("fixed-rate fleet drain ratio vs ideal", fixed.drain / max(fixed.ideal, 0.001))
}
if let adaptive = figures[.adaptive] {
    report(adaptive, prefix: "")
    if let fixed = figures[.fixed] {
        result("fleet drain time ratio vs fixed rate", adaptive.drain / max(fixed.drain, 0.001))
    }
    result("fleet drain ratio vs ideal", adaptive.drain / max(adaptive.ideal, 0.001))
}
let failed = figures.values.contains { $0.duplicates > 0 || $0.missing > 0 }
exit(failed ? 1 : 0)
