import SyncModel
import Testing

/// Sign-in throttling: admitted and counted before hashing, per (account, address) and per
/// address, never per account alone.
@Suite struct LoginThrottleTests {
    func admitted(_ admission: LoginThrottle.Admission) -> LoginThrottle.Ticket? {
        if case .admitted(let ticket) = admission { return ticket }
        return nil
    }

    @Test func aParallelBurstMeetsTheCountOfTheAttemptsBeforeIt() {
        var throttle = LoginThrottle()
        throttle.maxConcurrent = 100
        // Twenty guesses arrive together: none has finished hashing when the next is asked.
        var tickets: [LoginThrottle.Ticket] = []
        var slowed = 0
        for _ in 0..<20 {
            switch throttle.admit(account: "drb", address: "10.0.0.9", now: 0) {
            case .admitted(let ticket): tickets.append(ticket)
            case .wait: slowed += 1
            case .busy: Issue.record("busy")
            }
        }
        #expect(tickets.count == throttle.freeAttempts, "only the free attempts get to hash")
        #expect(slowed == 20 - throttle.freeAttempts)
    }

    @Test func atMostTwoHashesRunAtOnce() {
        var throttle = LoginThrottle()
        let a = admitted(throttle.admit(account: "a", address: "1", now: 0))
        let b = admitted(throttle.admit(account: "b", address: "2", now: 0))
        #expect(a != nil && b != nil)
        #expect(throttle.admit(account: "c", address: "3", now: 0) == .busy)
        throttle.finish(a!, succeeded: true, now: 0)
        #expect(admitted(throttle.admit(account: "c", address: "3", now: 0)) != nil)
    }

    @Test func aStrangerCannotLockTheDoctorOut() {
        var throttle = LoginThrottle()
        for _ in 0..<50 {
            if let ticket = admitted(throttle.admit(account: "drb", address: "10.0.0.66", now: 0)) {
                throttle.finish(ticket, succeeded: false, now: 0)
            }
        }
        if case .wait = throttle.admit(account: "drb", address: "10.0.0.66", now: 1) {
        } else {
            Issue.record("the guesser is not slowed down")
        }
        // The doctor, at her own machine, signs in at once.
        let ticket = admitted(throttle.admit(account: "drb", address: "10.0.0.5", now: 1))
        #expect(ticket != nil)
    }

    @Test func delaysGrowAndAreBounded() {
        var throttle = LoginThrottle()
        var waits: [Double] = []
        var now = 0.0
        for _ in 0..<12 {
            switch throttle.admit(account: "a", address: "x", now: now) {
            case .admitted(let ticket): throttle.finish(ticket, succeeded: false, now: now)
            case .wait(let seconds):
                waits.append(seconds)
                now += seconds
            case .busy: Issue.record("busy")
            }
        }
        #expect(waits.count >= 3)
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 < $1 || $1 == throttle.maxDelay })
        #expect(waits.allSatisfy { $0 <= throttle.maxDelay })
    }

    @Test func aSuccessAndAnUnlockClearTheCount() {
        var throttle = LoginThrottle()
        for _ in 0..<4 {
            throttle.finish(admitted(throttle.admit(account: "a", address: "x", now: 0))!, succeeded: false, now: 0)
        }
        throttle.finish(admitted(throttle.admit(account: "a", address: "x", now: 0))!, succeeded: true, now: 0)
        for _ in 0..<5 {
            throttle.finish(admitted(throttle.admit(account: "a", address: "x", now: 1))!, succeeded: false, now: 1)
        }
        if case .wait = throttle.admit(account: "a", address: "x", now: 1) {} else { Issue.record("not slowed") }
        #expect(throttle.unlock(account: "a") == 1)
        #expect(admitted(throttle.admit(account: "a", address: "x", now: 1)) != nil)
    }
}

/// The `Host` names the local API answers to.
@Suite struct AllowedHostsTests {
    let hosts = AllowedHosts(["localhost", "127.0.0.1", "::1", "Cabinet-PC", "[fe80::1]"])

    @Test(arguments: [
        "localhost", "localhost:8090", "127.0.0.1:8090", "[::1]:8090", "[::1]", "cabinet-pc", "CABINET-PC:443",
        "localhost.", "[fe80::1]:1",
    ])
    func allowed(authority: String) {
        #expect(hosts.allows(authority: authority))
    }

    @Test(arguments: [
        "", "evil.example", "evil.example:8090", "127.0.0.2", "localhost:abc", "localhost:", "user@localhost",
        "[::1", "[::2]:80", "localhost/x", "127.0.0.1:80:80",
    ])
    func refused(authority: String) {
        #expect(!hosts.allows(authority: authority))
    }

    @Test func noHostHeaderIsRefused() {
        #expect(!hosts.allows(authority: nil))
    }
}
