import SyncModel
import Testing

/// A server of capacity `capacity` requests a second with a queue: latency grows as the queue
/// fills, past `maxQueue` seconds of backlog it answers 429 with a Retry-After. Fluid model,
/// fake clock.
private struct SimulatedServer {
    var capacity: Double
    var baseLatency = 0.02
    var maxQueue = 2.0
    var backlog = 0.0
    var last = 0.0
    var admitted = 0
    var rejected = 0

    mutating func arrive(at now: Double) -> (RateController.Outcome, latency: Double) {
        backlog = max(0, backlog - (now - last) * capacity)
        last = now
        if backlog / capacity >= maxQueue {
            rejected += 1
            return (.overloaded(retryAfter: 1), baseLatency)
        }
        backlog += 1
        admitted += 1
        let latency = baseLatency + backlog / capacity
        return (.answered(latency: latency), latency)
    }
}

/// Clients that always have work, each paced by its controller, against one server.
private struct Simulation {
    var server: SimulatedServer
    var controllers: [RateController]
    /// (time answered, client, outcome, sent at)
    var pending: [(at: Double, client: Int, outcome: RateController.Outcome)] = []
    var nextSend: [Double]
    var admittedAt: [[Double]]
    var rates: [[(Double, Double)]]

    init(capacity: Double, controllers: [RateController]) {
        server = SimulatedServer(capacity: capacity)
        self.controllers = controllers
        nextSend = controllers.indices.map { Double($0) * 0.013 }
        admittedAt = controllers.map { _ in [] }
        rates = controllers.map { _ in [] }
    }

    mutating func run(until end: Double) {
        while true {
            let sendIndex = nextSend.indices.min { nextSend[$0] < nextSend[$1] }!
            let sendAt = nextSend[sendIndex]
            let answer = pending.indices.min { pending[$0].at < pending[$1].at }
            if let answer, pending[answer].at <= sendAt {
                let done = pending.remove(at: answer)
                guard done.at <= end else { break }
                controllers[done.client].record(done.outcome, now: done.at)
                rates[done.client].append((done.at, controllers[done.client].rate))
                continue
            }
            guard sendAt <= end else { break }
            // The request takes its slot; it goes when the controller says.
            let wait = controllers[sendIndex].delay(now: sendAt)
            let at = sendAt + wait
            let (outcome, latency) = server.arrive(at: at)
            if case .answered = outcome { admittedAt[sendIndex].append(at) }
            pending.append((at + latency, sendIndex, outcome))
            nextSend[sendIndex] = at
            if wait == 0 { nextSend[sendIndex] = at + 0.0001 }
        }
    }

    func throughput(_ client: Int, from: Double, to: Double) -> Double {
        Double(admittedAt[client].filter { $0 >= from && $0 < to }.count) / (to - from)
    }

    func rateRange(_ client: Int, from: Double) -> ClosedRange<Double> {
        let values = rates[client].filter { $0.0 >= from }.map(\.1)
        return values.min()!...values.max()!
    }
}

private func adaptive(ceiling: Double = 500, initial: Double = 1) -> RateController {
    RateController(settings: .init(ceiling: ceiling, initial: initial))
}

@Suite struct RateControllerTests {
    @Test func convergesToTheCapacityFromBelow() {
        var sim = Simulation(capacity: 50, controllers: [adaptive()])
        sim.run(until: 120)
        let steady = sim.throughput(0, from: 60, to: 120)
        #expect(steady >= 0.8 * 50, "steady throughput \(steady)")
        #expect(steady <= 50.5)
        let share = Double(sim.server.rejected) / Double(sim.server.rejected + sim.server.admitted)
        #expect(share <= 0.05, "rejected share \(share)")
    }

    @Test func convergesToTheCapacityFromAbove() {
        var sim = Simulation(capacity: 20, controllers: [adaptive(ceiling: 500, initial: 400)])
        sim.run(until: 60)
        let range = sim.rateRange(0, from: 30)
        #expect(range.upperBound <= 2 * 20, "rate range \(range)")
        #expect(sim.throughput(0, from: 30, to: 60) >= 0.75 * 20)
    }

    @Test func oscillationIsBounded() {
        var sim = Simulation(capacity: 40, controllers: [adaptive()])
        sim.run(until: 180)
        let range = sim.rateRange(0, from: 60)
        #expect(range.lowerBound >= 0.4 * 40, "rate range \(range)")
        #expect(range.upperBound <= 1.6 * 40, "rate range \(range)")
    }

    @Test func twoDaemonsShareTheCapacityFairlyAndNeitherStarves() {
        var sim = Simulation(
            capacity: 60, controllers: [adaptive(initial: 1), adaptive(initial: 30)])
        sim.run(until: 240)
        let a = sim.throughput(0, from: 120, to: 240)
        let b = sim.throughput(1, from: 120, to: 240)
        let jain = (a + b) * (a + b) / (2 * (a * a + b * b))
        #expect(jain >= 0.9, "throughputs \(a) and \(b)")
        #expect(a + b >= 0.75 * 60)
    }

    @Test func retryAfterIsAFloorAndTheRateDrops() {
        var c = adaptive(initial: 10)
        #expect(c.delay(now: 0) == 0)
        c.record(.overloaded(retryAfter: 30), now: 0.1)
        #expect(c.rate == 7)
        #expect(c.delay(now: 0.2) >= 29.9)
        // A Retry-After past the cap is honoured up to the cap.
        var d = adaptive(initial: 10)
        d.record(.overloaded(retryAfter: 86_400), now: 0)
        #expect(d.delay(now: 0) == 600)
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

    @Test func burstsOfPushBackDecreaseOncePerReaction() {
        var c = adaptive(initial: 10)
        for n in 0..<20 { c.record(.overloaded(retryAfter: nil), now: 1 + Double(n) * 0.01) }
        #expect(c.rate == 7)
        c.record(.timeout, now: 2)
        #expect(c.rate == 7 * 0.7)
    }

    @Test func afterAnOutageTheRateStartsSlow() {
        var c = adaptive(ceiling: 100, initial: 2)
        var now = 0.0
        for _ in 0..<400 {
            now += c.delay(now: now)
            c.record(.answered(latency: 0.01), now: now)
        }
        #expect(c.rate > 20)
        c.record(.unreachable, now: now)
        c.record(.answered(latency: 0.01), now: now + 1)
        #expect(c.rate == 2)
        #expect(c.inSlowStart)
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
