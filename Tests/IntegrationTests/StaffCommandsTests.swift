import Foundation
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// `syncctl user` and `syncctl audit` against a real daemon: accounts made over the control
/// socket (passwords on standard input), and a tampered audit trail found after a restart.
@Suite(.serialized) struct StaffCommandsTests {
    func ctl(_ fixture: DaemonFixture, _ arguments: [String], input: String? = nil) throws -> (
        status: Int32, output: String
    ) {
        try fixture.ctl(arguments, input: input)
    }

    func users(_ fixture: DaemonFixture) throws -> [StaffAccountSummary] {
        let (status, output) = try ctl(fixture, ["user", "list", "--json"])
        #expect(status == 0, "\(output)")
        return try JSONDecoder().decode([StaffAccountSummary].self, from: Data(output.utf8))
    }

    func audit(_ fixture: DaemonFixture, _ filters: [String] = []) throws -> [AuditRecord] {
        let (status, output) = try ctl(fixture, ["audit", "list", "--json"] + filters)
        #expect(status == 0, "\(output)")
        return try JSONDecoder().decode([AuditRecord].self, from: Data(output.utf8))
    }

    func startAndWait(_ fixture: DaemonFixture) throws {
        try fixture.start()
        let up = DaemonFixture.waitUntil(timeout: 60) { ((try? fixture.status()) ?? nil) != nil }
        #expect(up, "log:\n\(fixture.log.suffix(1500))")
    }

    /// Runs SQL on the stopped daemon's replica with the sqlite3 shell; returns its output.
    @discardableResult
    func sqlite(_ fixture: DaemonFixture, _ sql: String) throws -> String {
        let shell = try #require(
            ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3", "/bin/sqlite3"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            }, "the sqlite3 shell is needed to tamper with the replica")
        let (status, output) = try run(shell, [fixture.stateDir + "/" + Replica.fileName, sql])
        #expect(status == 0, "\(output)")
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func accountsOverTheControlSocketAndATamperedTrail() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = [\"Patient\"]\npoll_interval = 3600")
        try startAndWait(fixture)

        let empty = try ctl(fixture, ["user", "list"])
        #expect(empty.status == 0)
        #expect(empty.output.contains("No staff accounts yet"))

        // Added with the password on standard input.
        let passwords = ["correct horse battery", "another long password", "a third long password"]
        let add = try ctl(
            fixture, ["user", "add", "amartin", "--display-name", "Dr A. Martin"], input: passwords[0] + "\n")
        #expect(add.status == 0, "\(add.output)")
        #expect(add.output.contains("user amartin added"))
        #expect(
            try ctl(fixture, ["user", "add", "bpetit", "--language", "en"], input: passwords[1] + "\n").status == 0)

        let list = try ctl(fixture, ["user", "list"])
        #expect(list.status == 0)
        #expect(list.output.contains("amartin"))
        #expect(list.output.contains("Dr A. Martin"))
        #expect(!list.output.contains("pbkdf2"))
        let added = try users(fixture)
        #expect(added.map(\.name) == ["amartin", "bpetit"])
        #expect(added.map(\.language) == ["fr", "en"])
        #expect(added.map(\.displayName) == ["Dr A. Martin", "bpetit"])
        #expect(added.allSatisfy { !$0.disabled })

        // Refusals: too short, taken, malformed name, no password, unknown account.
        let short = try ctl(fixture, ["user", "add", "shorty"], input: "short\n")
        #expect(short.status == 1)
        #expect(short.output.contains("at least 10 characters"), "\(short.output)")
        #expect(!short.output.contains("short\n"))
        let taken = try ctl(fixture, ["user", "add", "amartin"], input: passwords[2] + "\n")
        #expect(taken.status == 1)
        #expect(taken.output.contains("already exists"))
        #expect(try ctl(fixture, ["user", "add", "Bad Name"], input: passwords[2] + "\n").status != 0)
        let none = try ctl(fixture, ["user", "add", "nopass"])
        #expect(none.status == 1)
        #expect(none.output.contains("no password"))
        let unknown = try ctl(fixture, ["user", "disable", "nobody"])
        #expect(unknown.status == 1)
        #expect(unknown.output.contains("no user nobody"))
        #expect(try users(fixture).map(\.name) == ["amartin", "bpetit"])

        // Password change, disable, enable, disable again.
        let before = try #require(try users(fixture).last)
        let passwd = try ctl(fixture, ["user", "passwd", "bpetit"], input: passwords[2] + "\n")
        #expect(passwd.status == 0, "\(passwd.output)")
        #expect(try users(fixture).last?.passwordChangedAt != before.passwordChangedAt)
        #expect(try ctl(fixture, ["user", "passwd", "bpetit"], input: "tiny\n").status == 1)
        #expect(try ctl(fixture, ["user", "disable", "bpetit"]).status == 0)
        #expect(try users(fixture).map(\.disabled) == [false, true])
        #expect(try ctl(fixture, ["user", "list"]).output.contains("disabled"))
        #expect(try ctl(fixture, ["user", "enable", "bpetit"]).status == 0)
        #expect(try users(fixture).map(\.disabled) == [false, false])
        #expect(try ctl(fixture, ["user", "disable", "bpetit"]).status == 0)
        #expect(try users(fixture).map(\.disabled) == [false, true])

        // Every change is in the audit trail, by the operator; nothing secret in the log.
        // (Reading the trail is itself recorded: `audit-list` lines between them.)
        let trail = try audit(fixture).filter { $0.target?.hasPrefix("account ") == true }
        #expect(
            trail.map(\.action) == [
                "user-add", "user-add", "user-passwd", "user-disable", "user-enable", "user-disable",
            ])
        #expect(
            trail.map(\.target)
                == ["amartin", "bpetit", "bpetit", "bpetit", "bpetit", "bpetit"].map { "account \($0)" })
        #expect(trail.allSatisfy { $0.actor.hasSuffix("(uid \(getuid()))") }, "\(trail.map(\.actor))")
        let table = try ctl(fixture, ["audit", "list"])
        #expect(table.status == 0)
        #expect(table.output.contains("user-passwd"))
        #expect(table.output.contains("account bpetit"))
        #expect(try audit(fixture, ["--limit", "2"]).map(\.action) == ["audit-list", "audit-list"])
        #expect(try audit(fixture).filter { $0.action == "audit-list" }.allSatisfy { $0.actor == trail[0].actor })
        #expect(try audit(fixture, ["--user", "nobody"]).isEmpty)
        #expect(try audit(fixture, ["--patient", "pat-1"]).isEmpty)
        #expect(try audit(fixture, ["--since", "2999-01-01"]).isEmpty)
        #expect(
            try audit(fixture, ["--since", "2000-01-01T00:00:00Z"]).filter { $0.action.hasPrefix("user-") }.count == 6)
        #expect(try ctl(fixture, ["audit", "list", "--since", "yesterday"]).status != 0)
        for secret in passwords + ["pbkdf2", "tiny"] {
            #expect(!fixture.log.contains(secret), "the daemon logged \(secret)")
        }

        let intact = try ctl(fixture, ["audit", "verify"])
        #expect(intact.status == 0)
        #expect(intact.output.hasPrefix("audit trail intact: "), "\(intact.output)")
        #expect(try fixture.status()?.accessAlerts == [])

        // A line's time edited while the daemon is stopped.
        #expect(fixture.stop() == 0)
        let original = try sqlite(fixture, "SELECT at FROM audit_log WHERE seq = 2")
        #expect(!original.isEmpty)
        try sqlite(fixture, "UPDATE audit_log SET at = '2026-01-01T00:00:00.000Z' WHERE seq = 2")
        try startAndWait(fixture)
        let altered = try ctl(fixture, ["audit", "verify"])
        #expect(altered.status == 2, "\(altered.output)")
        #expect(altered.output.hasPrefix("audit trail BROKEN at record #2: line altered\n"), "\(altered.output)")

        // Put back, then another line deleted.
        #expect(fixture.stop() == 0)
        try sqlite(fixture, "UPDATE audit_log SET at = '\(original)' WHERE seq = 2")
        try sqlite(fixture, "DELETE FROM audit_log WHERE seq = 4")
        try startAndWait(fixture)
        let missing = try ctl(fixture, ["audit", "verify"])
        #expect(missing.status == 2, "\(missing.output)")
        #expect(missing.output.hasPrefix("audit trail BROKEN at record #4: line missing\n"), "\(missing.output)")
        // The rest of the trail still reads.
        #expect(try audit(fixture).filter { $0.action.hasPrefix("user-") }.count == 5)
        #expect(fixture.stop() == 0)
    }
}
