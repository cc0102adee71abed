import Foundation
import SyncModel
import Testing

private typealias Machine = OutageStateMachine

/// A sequence of events from a fresh machine (online at 0) and the state after each.
struct OutageScenario: Sendable, CustomTestStringConvertible {
    struct Step: Sendable {
        var event: OutageStateMachine.Event
        var at: Double
        var state: OutageStateMachine.State
        /// Whether this event changes the state (a transition is reported).
        var changes: Bool
    }

    var name: String
    var steps: [Step]
    var testDescription: String { name }

    init(_ name: String, _ steps: [(OutageStateMachine.Event, Double, OutageStateMachine.State, Bool)]) {
        self.name = name
        self.steps = steps.map { Step(event: $0.0, at: $0.1, state: $0.2, changes: $0.3) }
    }
}

private let timeout = OutageStateMachine.Event.failed(.timeout)
private let refused = OutageStateMachine.Event.failed(.connectionRefused)
private let unavailable = OutageStateMachine.Event.failed(.unavailable(retryAfter: nil))

/// Events that drive a fresh machine into an outage at t = 0, 1, 2.
private let intoOutage: [(OutageStateMachine.Event, Double, OutageStateMachine.State, Bool)] = [
    (timeout, 0, .degraded, true), (timeout, 1, .degraded, false), (timeout, 2, .outage, true),
]

/// Then into recovering at t = 10.
private let intoRecovering = intoOutage + [(.probeSucceeded, 10, .recovering, true)]

@Suite struct OutageStateMachineTests {
    static let scenarios: [OutageScenario] = [
        OutageScenario(
            "online stays online on successes", [(.succeeded, 0, .online, false), (.probeSucceeded, 1, .online, false)]),
        OutageScenario("first failure degrades", [(timeout, 0, .degraded, true)]),
        OutageScenario("refused connection degrades", [(refused, 0, .degraded, true)]),
        OutageScenario("5xx degrades", [(.failed(.serverError(502)), 0, .degraded, true)]),
        OutageScenario("429 degrades", [(.failed(.tooManyRequests(retryAfter: 5)), 0, .degraded, true)]),
        OutageScenario("failed probe while online degrades", [(.probeFailed(.timeout), 0, .degraded, true)]),
        OutageScenario("success while degraded", [(timeout, 0, .degraded, true), (.succeeded, 1, .online, true)]),
        OutageScenario(
            "probe success while degraded", [(unavailable, 0, .degraded, true), (.probeSucceeded, 1, .online, true)]),
        OutageScenario("three consecutive failures", intoOutage),
        OutageScenario(
            "failures counted across probes and requests",
            [(timeout, 0, .degraded, true), (.probeFailed(.timeout), 1, .degraded, false), (refused, 2, .outage, true)]),
        OutageScenario("failures spanning 60 s", [(timeout, 0, .degraded, true), (unavailable, 60, .outage, true)]),
        OutageScenario(
            "failures spanning under 60 s", [(timeout, 0, .degraded, true), (unavailable, 59.9, .degraded, false)]),
        OutageScenario(
            "a success resets the count",
            [
                (timeout, 0, .degraded, true), (timeout, 1, .degraded, false), (.succeeded, 2, .online, true),
                (timeout, 3, .degraded, true), (timeout, 4, .degraded, false), (timeout, 5, .outage, true),
            ]),
        OutageScenario(
            "a success resets the time span",
            [
                (timeout, 0, .degraded, true), (.succeeded, 50, .online, true), (timeout, 70, .degraded, true),
                (timeout, 100, .degraded, false), (timeout, 130, .outage, true),
            ]),
        OutageScenario(
            "only a probe leaves an outage",
            intoOutage + [
                (.succeeded, 3, .outage, false), (timeout, 4, .outage, false),
                (.probeFailed(.connectionRefused), 5, .outage, false),
                (.resume, 6, .outage, false), (.probeSucceeded, 10, .recovering, true),
            ]),
        OutageScenario(
            "recovering needs two successes",
            intoRecovering + [(.succeeded, 11, .recovering, false), (.probeSucceeded, 12, .online, true)]),
        OutageScenario(
            "recovering back to outage on a failure", intoRecovering + [(unavailable, 11, .outage, true)]),
        OutageScenario(
            "recovering back to outage on a failed probe",
            intoRecovering + [
                (.succeeded, 11, .recovering, false), (.probeFailed(.serverError(500)), 12, .outage, true),
            ]),
        OutageScenario(
            "successes before a relapse do not count",
            intoRecovering + [
                (.succeeded, 11, .recovering, false), (timeout, 12, .outage, true),
                (.probeSucceeded, 20, .recovering, true),
                (.succeeded, 21, .recovering, false), (.succeeded, 22, .online, true),
            ]),
        OutageScenario("pause from online", [(.pause, 0, .paused, true)]),
        OutageScenario("pause from degraded", [(timeout, 0, .degraded, true), (.pause, 1, .paused, true)]),
        OutageScenario("pause from outage", intoOutage + [(.pause, 3, .paused, true)]),
        OutageScenario("pause from recovering", intoRecovering + [(.pause, 11, .paused, true)]),
        OutageScenario("pause when paused", [(.pause, 0, .paused, true), (.pause, 1, .paused, false)]),
        OutageScenario(
            "paused ignores outcomes",
            [
                (.pause, 0, .paused, true), (timeout, 1, .paused, false), (timeout, 2, .paused, false),
                (timeout, 3, .paused, false), (.succeeded, 4, .paused, false), (.probeSucceeded, 5, .paused, false),
                (.probeFailed(.timeout), 6, .paused, false),
            ]),
        OutageScenario(
            "resume goes through recovering",
            [
                (.pause, 0, .paused, true), (.resume, 5, .recovering, true), (.succeeded, 6, .recovering, false),
                (.probeSucceeded, 7, .online, true),
            ]),
        OutageScenario(
            "resume then failure is an outage",
            [(.pause, 0, .paused, true), (.resume, 5, .recovering, true), (refused, 6, .outage, true)]),
        OutageScenario("resume when not paused", [(.resume, 0, .online, false)]),
    ]

    @Test(arguments: scenarios)
    func transitions(_ scenario: OutageScenario) {
        var machine = Machine()
        for step in scenario.steps {
            let before = machine.state
            let sinceBefore = machine.since
            let evidenceBefore = machine.evidence
            let transition = machine.handle(step.event, now: step.at)
            #expect(machine.state == step.state, "\(step.event) at \(step.at)")
            if step.changes {
                #expect(
                    transition?.from == before && transition?.to == step.state && transition?.at == step.at,
                    "\(step.event) at \(step.at)")
                #expect(machine.since == step.at)
                #expect(transition?.evidence == machine.evidence)
            } else {
                #expect(transition == nil, "\(step.event) at \(step.at)")
                #expect(machine.since == sinceBefore)
                #expect(machine.evidence == evidenceBefore)
            }
            #expect(machine.replayAllowed == (machine.state == .online))
        }
    }

    @Test(arguments: scenarios)
    func evidenceIsStatusesCountsAndDurationsOnly(_ scenario: OutageScenario) {
        var machine = Machine()
        let allowed = Set("abcdefghijklmnopqrstuvwxyzAHPRT0123456789 ()-,.:;")
        for step in scenario.steps {
            if let transition = machine.handle(step.event, now: step.at) {
                #expect(transition.evidence.allSatisfy(allowed.contains), "\(transition.evidence)")
                #expect(!transition.evidence.isEmpty)
            }
        }
    }

    @Test func evidenceTexts() {
        var machine = Machine()
        #expect(
            machine.handle(.failed(.unavailable(retryAfter: 30)), now: 100)?.evidence
                == "first failure (HTTP 503, Retry-After 30s)")
        #expect(machine.handle(.failed(.timeout), now: 110) == nil)
        #expect(
            machine.handle(.probeFailed(.tooManyRequests(retryAfter: 2.5)), now: 120.04)
                == .init(
                    from: .degraded, to: .outage,
                    evidence: "3 consecutive failures over 20s (last: health probe failed: HTTP 429, Retry-After 2.5s)",
                    at: 120.04))
        #expect(machine.handle(.probeSucceeded, now: 200)?.evidence == "health probe succeeded")
        #expect(
            machine.handle(.failed(.connectionRefused), now: 201)?.evidence
                == "failure while recovering (connection refused)")
        _ = machine.handle(.probeSucceeded, now: 300)
        _ = machine.handle(.succeeded, now: 301)
        #expect(machine.handle(.succeeded, now: 302)?.evidence == "2 consecutive successes")
        #expect(machine.state == .online)
        _ = machine.handle(.failed(.serverError(500)), now: 400)
        #expect(machine.evidence == "first failure (HTTP 500)")
        #expect(machine.handle(.succeeded, now: 401)?.evidence == "request succeeded after 1 failure")
        #expect(machine.handle(.pause, now: 500)?.evidence == "paused by operator")
        #expect(machine.handle(.resume, now: 600)?.evidence == "resumed by operator; health probe required")
        #expect(machine.since == 600)
    }

    @Test func outageByTimeNamesTheSpan() {
        var machine = Machine()
        _ = machine.handle(.failed(.timeout), now: 0)
        #expect(
            machine.handle(.failed(.connectionRefused), now: 75.25)?.evidence
                == "2 consecutive failures over 75.3s (last: connection refused)")
    }

    @Test(arguments: [
        // (N, T, M, failure times, state after them)
        (5, 600.0, 3, [0.0, 1, 2, 3], OutageStateMachine.State.degraded),
        (5, 600.0, 3, [0.0, 1, 2, 3, 4], .outage),
        (5, 600.0, 3, [0.0, 599], .degraded),
        (5, 600.0, 3, [0.0, 600], .outage),
        (1, 60.0, 2, [0.0], .outage),
        (2, 60.0, 2, [0.0], .degraded),
        (2, 60.0, 2, [0.0, 1], .outage),
    ])
    func configurableThresholds(
        failures: Int, window: Double, successes: Int, times: [Double], expected: OutageStateMachine.State
    ) {
        var machine = Machine(failuresToOutage: failures, failureWindow: window, successesToRecover: successes)
        for t in times { _ = machine.handle(.failed(.timeout), now: t) }
        #expect(machine.state == expected)
    }

    @Test func configurableSuccessesToRecover() {
        var machine = Machine(successesToRecover: 3, state: .outage, since: 0)
        #expect(machine.handle(.probeSucceeded, now: 1)?.to == .recovering)
        #expect(machine.handle(.succeeded, now: 2) == nil)
        #expect(machine.handle(.succeeded, now: 3) == nil)
        #expect(machine.handle(.succeeded, now: 4)?.to == .online)
    }

    @Test(arguments: OutageStateMachine.State.allCases)
    func replayOnlyWhenOnline(state: OutageStateMachine.State) {
        #expect(Machine(state: state).replayAllowed == (state == .online))
    }

    @Test func transitionsAreCodableForStatus() throws {
        let transition = OutageStateMachine.Transition(from: .degraded, to: .outage, evidence: "3 failures", at: 12.5)
        let data = try JSONEncoder().encode(transition)
        #expect(try JSONDecoder().decode(OutageStateMachine.Transition.self, from: data) == transition)
        #expect(String(decoding: data, as: UTF8.self).contains(#""to":"outage""#))
    }

    @Test(arguments: [
        // (events before, attempt, unit, expected delay), default probe backoff: base 1 s, cap 300 s
        ([OutageStateMachine.Event](), 1, 0.5, 0.5),
        ([], 3, 0.5, 2),
        ([], 1, 0, 0),
        ([], 20, 1, 300),
        ([], 10_000, 0.5, 150),
        ([], 0, 1, 1),
        ([.failed(.unavailable(retryAfter: 120))], 1, 0, 120),
        ([.failed(.unavailable(retryAfter: 120))], 20, 1, 300),
        ([.failed(.unavailable(retryAfter: 900))], 20, 1, 900),
        ([.failed(.tooManyRequests(retryAfter: 30))], 2, 0.5, 30),
        ([.probeFailed(.unavailable(retryAfter: 45))], 1, 0.5, 45),
        // A timeout or refused connection is no new word from the server: the floor stays.
        ([.failed(.unavailable(retryAfter: 120)), .failed(.timeout), .probeFailed(.connectionRefused)], 1, 0, 120),
        // A later server response without Retry-After replaces it.
        ([.failed(.unavailable(retryAfter: 120)), .failed(.serverError(500))], 1, 0, 0),
        ([.failed(.unavailable(retryAfter: 120)), .failed(.unavailable(retryAfter: nil))], 1, 0, 0),
        ([.failed(.unavailable(retryAfter: 120)), .failed(.tooManyRequests(retryAfter: 7))], 1, 0, 7),
        // Any success clears it.
        ([.failed(.unavailable(retryAfter: 120)), .succeeded], 1, 0, 0),
        (
            [.failed(.timeout), .failed(.timeout), .failed(.unavailable(retryAfter: 120)), .probeSucceeded],
            1, 0, 0
        ),
    ])
    func probeDelayHonoursRetryAfter(events: [OutageStateMachine.Event], attempt: Int, unit: Double, expected: Double) {
        var machine = Machine()
        for (i, event) in events.enumerated() { _ = machine.handle(event, now: Double(i)) }
        #expect(machine.nextProbeDelay(attempt: attempt, unit: unit) == expected)
    }

    @Test func probeDelayUsesTheConfiguredBackoff() {
        var machine = Machine(probeBackoff: Backoff(base: 2, cap: 10, maxAttempts: 3))
        #expect(machine.nextProbeDelay(attempt: 2, unit: 0.5) == 2)
        #expect(machine.nextProbeDelay(attempt: 50, unit: 1) == 10)
        _ = machine.handle(.failed(.tooManyRequests(retryAfter: 60)), now: 0)
        #expect(machine.nextProbeDelay(attempt: 50, unit: 1) == 60)
        #expect(machine.lastRetryAfter == 60)
    }

    @Test func equalMachinesCompareEqual() {
        var a = Machine()
        var b = Machine()
        _ = a.handle(.failed(.timeout), now: 1)
        #expect(a != b)
        _ = b.handle(.failed(.timeout), now: 1)
        #expect(a == b)
    }
}
