import SyncModel
import Testing

/// A discrete-event fleet: clients with at most `window` requests in flight, each paced by
/// its controller, against a vendor of capacity C with a queue (429 past `maxQueue`).
private struct FleetSimulation {
    enum Event {
        case start(Int)
        case send(Int)
        case answer(Int, RateController.Outcome, sentAt: Double)
    }
    var controllers: [RateController]
    var capacity: Double
    var maxQueue = 2.0
    var baseLatency = 0.02
    var window = 2
    var nextFree = 0.0
    var events: [(at: Double, seq: Int, event: Event)] = []
    var seq = 0
    var inFlight: [Int]
    var pacing: [Bool]
    var admitted = 0
    var rejected = 0
    var work: [Int]
    var finished: [Double?]
    /// (time, rate) of each client at each answer.
    var rates: [[(Double, Double)]]
    var admittedAt: [[Double]]

    init(controllers: [RateController], capacity: Double, work: Int, starts: [Double], window: Int = 2) {
        self.controllers = controllers
        self.window = window
        self.capacity = capacity
        inFlight = controllers.map { _ in 0 }
        pacing = controllers.map { _ in false }
        self.work = controllers.map { _ in work }
        finished = controllers.map { _ in nil }
        rates = controllers.map { _ in [] }
        admittedAt = controllers.map { _ in [] }
        for (c, start) in starts.enumerated() { schedule(start, .start(c)) }
    }

    mutating func schedule(_ at: Double, _ event: Event) {
        seq += 1
        let index = events.firstIndex { $0.at > at } ?? events.count
        events.insert((at, seq, event), at: index)
    }

    /// A client with room in its window reserves its next slot (one pacing chain a client:
    /// each send reserves the next; a full window waits for an answer).
    mutating func reserve(_ c: Int, now: Double) {
        guard !pacing[c] else { return }
        guard inFlight[c] < window, work[c] - inFlight[c] > 0 else { return }
        inFlight[c] += 1
        pacing[c] = true
        let wait = controllers[c].delay(now: now)
        schedule(now + wait, .send(c))
    }

    mutating func run(until end: Double) {
        while !events.isEmpty {
            let (now, _, event) = events.removeFirst()
            if now > end { break }
            switch event {
            case .start(let c):
                reserve(c, now: now)
            case .send(let c):
                // The next request takes its slot once this one is sent (window permitting).
                pacing[c] = false
                defer { reserve(c, now: now) }
                let slot = max(nextFree, now)
                if slot - now > maxQueue {
                    rejected += 1
                    schedule(now + baseLatency, .answer(c, .overloaded(retryAfter: 2), sentAt: now))
                } else {
                    nextFree = slot + 1 / capacity
                    admitted += 1
                    admittedAt[c].append(slot)
                    let latency = slot - now + baseLatency
                    schedule(now + latency, .answer(c, .answered(latency: latency), sentAt: now))
                }
            case .answer(let c, let outcome, let sentAt):
                controllers[c].record(outcome, now: now, sentAt: sentAt)
                rates[c].append((now, controllers[c].rate))
                inFlight[c] -= 1
                if case .answered = outcome {
                    work[c] -= 1
                    if work[c] == 0 { finished[c] = now }
                }
                reserve(c, now: now)
            }
        }
    }

    var rejectedShare: Double { Double(rejected) / Double(max(1, admitted + rejected)) }

    func throughput(_ client: Int, from: Double, to: Double) -> Double {
        Double(admittedAt[client].filter { $0 >= from && $0 < to }.count) / (to - from)
    }

    func rateRange(_ client: Int, from: Double) -> ClosedRange<Double> {
        let values = rates[client].filter { $0.0 >= from }.map(\.1)
        return values.min()!...values.max()!
    }

    /// Jain's index over the finish times.
    var fairness: Double {
        let times = finished.compactMap { $0 }
        let sum = times.reduce(0, +)
        return sum * sum / (Double(times.count) * times.reduce(0) { $0 + $1 * $1 })
    }
}

private func adaptive(ceiling: Double = 500, initial: Double = 1) -> RateController {
    RateController(settings: .init(ceiling: ceiling, initial: initial))
}

@Suite struct RateControllerTests {
    @Test func convergesToTheCapacityFromBelow() {
        var sim = FleetSimulation(
            controllers: [adaptive(ceiling: 500, initial: 1)], capacity: 50, work: 1_000_000, starts: [0],
            window: 1000)
        sim.run(until: 120)
        let steady = sim.throughput(0, from: 60, to: 120)
        #expect(steady >= 0.8 * 50, "steady throughput \(steady)")
        #expect(sim.rejectedShare <= 0.05, "rejected share \(sim.rejectedShare)")
    }

    @Test func convergesToTheCapacityFromAbove() {
        var sim = FleetSimulation(
            controllers: [adaptive(ceiling: 500, initial: 400)], capacity: 20, work: 1_000_000, starts: [0],
            window: 1000)
        sim.run(until: 60)
        let range = sim.rateRange(0, from: 30)
        #expect(range.upperBound <= 2 * 20, "rate range \(range)")
        #expect(sim.throughput(0, from: 30, to: 60) >= 0.75 * 20)
    }

    @Test func oscillationIsBounded() {
        // Many requests in flight allowed: the rate alone holds the load.
        var sim = FleetSimulation(
            controllers: [adaptive()], capacity: 40, work: 1_000_000, starts: [0], window: 1000)
        sim.run(until: 180)
        let range = sim.rateRange(0, from: 60)
        #expect(range.lowerBound >= 0.4 * 40, "rate range \(range)")
        #expect(range.upperBound <= 1.6 * 40, "rate range \(range)")
    }

    @Test func twoDaemonsShareTheCapacityFairlyAndNeitherStarves() {
        // One starts slow, the other fast; the same work each.
        var sim = FleetSimulation(
            controllers: [adaptive(initial: 1), adaptive(initial: 30)], capacity: 30, work: 3000, starts: [0, 0])
        sim.run(until: 1000)
        #expect(sim.finished.allSatisfy { $0 != nil }, "finished \(sim.finished)")
        #expect(sim.fairness >= 0.95, "finish times \(sim.finished)")
        let drain = sim.finished.compactMap { $0 }.max() ?? 0
        #expect(drain <= 1.25 * 6000 / 30, "drain \(drain)")
    }

    /// The fleet as `make bench-fleet` runs it, in a model: a hundred practices back together
    /// over a minute, each with two requests in flight at most.
    @Test func aFleetDrainsNearTheVendorsCapacityWithFewRejections() {
        let n = 100
        var sim = FleetSimulation(
            controllers: (0..<n).map { _ in RateController(settings: .init(ceiling: 20)) }, capacity: 40, work: 225,
            starts: (0..<n).map { Double($0) * 0.6 })
        sim.run(until: 3000)
        let drain = sim.finished.compactMap { $0 }.max() ?? .infinity
        let ideal = Double(n * 225) / 40
        #expect(drain <= 1.25 * ideal, "drain \(drain) s, ideal \(ideal) s")
        #expect(sim.rejectedShare <= 0.05, "rejected share \(sim.rejectedShare)")
        #expect(sim.fairness >= 0.9, "fairness \(sim.fairness)")
    }

    @Test func retryAfterIsAFloorAndTheRateDrops() {
        var c = adaptive(initial: 10)
        #expect(c.delay(now: 0) == 0)
        c.record(.overloaded(retryAfter: 30), now: 0.1)
        // Nothing delivered yet: down by three quarters at most.
        #expect(c.rate == 2.5)
        #expect(c.delay(now: 0.2) >= 29.9)
        // A Retry-After past the cap is honoured up to the cap.
        var d = adaptive(initial: 10)
        d.record(.overloaded(retryAfter: 86_400), now: 0)
        #expect(d.delay(now: 0) == 600)
    }

    @Test func aDecreaseIsMultiplicativeWhileTheServerDelivers() {
        var c = adaptive(ceiling: 10, initial: 10)
        var now = 0.0
        for _ in 0..<50 {
            now += c.delay(now: now)
            c.record(.answered(latency: 0.01), now: now + 0.01, sentAt: now)
        }
        let before = c.rate
        c.record(.overloaded(retryAfter: nil), now: now + 0.02, sentAt: now)
        #expect(abs(c.rate - before * 0.7) < 0.001)
    }

    @Test func newsFromBeforeADecreaseIsNotCountedAgain() {
        var c = adaptive(initial: 10)
        c.record(.overloaded(retryAfter: nil), now: 1, sentAt: 0.9)
        let after = c.rate
        // Answers to requests sent before the decrease: the same episode.
        for n in 0..<20 { c.record(.overloaded(retryAfter: nil), now: 1.6 + Double(n) * 0.01, sentAt: 0.95) }
        #expect(c.rate == after)
        // Without a send time, half a second apart.
        c.record(.timeout, now: 1.2)
        #expect(c.rate == after)
        // A request sent after it: news.
        c.record(.timeout, now: 3, sentAt: 2)
        #expect(c.rate < after)
    }

    @Test func nothingStarves() {
        var c = adaptive(initial: 10)
        var now = 0.0
        for _ in 0..<1000 {
            now += c.delay(now: now)
            c.record(.overloaded(retryAfter: nil), now: now)
            now += 0.01
        }
        #expect(c.rate >= c.settings.floor)
        #expect(c.delay(now: now) <= 1 / c.settings.floor + 0.001)
    }

    @Test func afterAnOutageTheRateStartsSlow() {
        var c = adaptive(ceiling: 100, initial: 10)
        var now = 0.0
        for _ in 0..<400 {
            now += c.delay(now: now)
            c.record(.answered(latency: 0.01), now: now)
        }
        #expect(c.rate > 20)
        c.record(.unreachable, now: now)
        c.record(.unreachable, now: now + 5)
        // A fortieth of the ceiling, at least 0.5 a second (the default ceiling of 20: 0.5).
        #expect(c.settings.restart == 2.5)
        #expect(RateController.Settings(ceiling: 20).restart == 0.5)
        #expect(c.rate == 2.5)
        #expect(c.inSlowStart)
        // Then it grows again as the EHR answers.
        _ = c.delay(now: now + 6)
        _ = c.delay(now: now + 6)
        c.record(.answered(latency: 0.01), now: now + 6.2)
        c.record(.answered(latency: 0.01), now: now + 6.8)
        #expect(c.rate > 2.5)
    }

    @Test func aRateNotUsedIsNotRaised() {
        var c = adaptive(ceiling: 100, initial: 5)
        var now = 0.0
        for _ in 0..<200 {
            now += 2  // one request every two seconds: far below the rate
            _ = c.delay(now: now)
            c.record(.answered(latency: 0.01), now: now + 0.01)
        }
        #expect(c.rate == 5)
    }

    @Test func theFixedPolicyKeepsItsRateAndItsBurst() {
        var c = RateController(settings: .init(policy: .fixed, ceiling: 20))
        #expect(c.rate == 20)
        c.record(.overloaded(retryAfter: nil), now: 0)
        c.record(.answered(latency: 5), now: 0)
        #expect(c.rate == 20)
        var waits: [Double] = []
        for _ in 0..<25 { waits.append(c.delay(now: 100)) }
        // A second's worth at once after a pause, then paced.
        #expect(waits.prefix(19).allSatisfy { $0 == 0 })
        #expect(waits.last! > 0.2)
    }

    @Test func theReconnectionWindowGrowsWithTheOutage() {
        #expect(ReconnectionJitter.window(outage: 0, cap: 300) == 0)
        #expect(ReconnectionJitter.window(outage: 5, cap: 300) == 3)
        #expect(ReconnectionJitter.window(outage: 3600, cap: 300) == 60)
        #expect(ReconnectionJitter.window(outage: 3 * 86_400, cap: 300) == 300)
        #expect(ReconnectionJitter.window(outage: 3600, cap: 30) == 30)
        #expect(ReconnectionJitter.wait(outage: 3600, cap: 300, unit: 0.5) == 30)
    }
}

@Suite struct SweepScheduleTests {
    @Test func sweepsFallOnTheGridOfTheirPhase() {
        let phase = 0.25
        // Interval 100: slots at 25, 125, 225…
        #expect(!SweepSchedule.isDue(lastSweep: 30, now: 120, interval: 100, phase: phase))
        #expect(SweepSchedule.isDue(lastSweep: 30, now: 126, interval: 100, phase: phase))
        #expect(SweepSchedule.isDue(lastSweep: nil, now: 0, interval: 100, phase: phase))
        #expect(SweepSchedule.isDue(lastSweep: 30, now: 31, interval: 0, phase: phase))
    }

    @Test func aSlotMissedDuringAnOutageIsNotOwedOnReturn() {
        // Last swept at 30; an outage from 100 to 1000 (slots 125…925 missed); back at 1000.
        #expect(SweepSchedule.isDue(lastSweep: 30, now: 1000, interval: 100, phase: 0.25))
        #expect(!SweepSchedule.isDue(lastSweep: 30, now: 1000, interval: 100, phase: 0.25, notBefore: 1000))
        #expect(SweepSchedule.isDue(lastSweep: 30, now: 1026, interval: 100, phase: 0.25, notBefore: 1000))
    }

    @Test func phasesSpreadAFleetOverTheInterval() {
        let phases = (0..<1000).map { SweepSchedule.phase(of: "replica-\($0)") }
        #expect(phases.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(SweepSchedule.phase(of: "replica-1") == SweepSchedule.phase(of: "replica-1"))
        // Every tenth of the interval holds some of them.
        for decile in 0..<10 {
            #expect(phases.filter { Int($0 * 10) == decile }.count >= 60)
        }
    }
}
