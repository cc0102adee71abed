import ArgumentParser
import Foundation
import SyncModel

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and check the audit trail: who did what, when, to which patient's data.",
        discussion: """
            The trail records every access to patient data, staff account change and operator \
            decision. Its lines are sealed and chained, so `syncctl audit verify` finds any line \
            edited, removed or moved outside ehr-sync.
            """,
        subcommands: [List.self, Verify.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List audit records, newest last (the default).",
            discussion: "Filters combine: --patient pat-42 --user amartin --since 2026-11-01.")
        @OptionGroup var socket: SocketOptions
        @Option(name: .long, help: "Only records about this patient (its id).") var patient: String?
        @Option(name: .long, help: "Only records made by this user (account or system user name).") var user: String?
        @Option(
            name: .long,
            help: "Only records from this date (2026-11-01, midnight UTC) or instant (2026-11-01T08:00:00Z) on.")
        var since: SinceArgument?
        @Option(name: .long, help: "Show at most the last N matching records (0: all).") var limit = 100
        @Flag(name: .long, help: "Print JSON.") var json = false

        func validate() throws {
            guard limit >= 0 else { throw ValidationError("--limit must be 0 (all) or more") }
        }

        func run() throws {
            let query = ControlCommand.AuditQuery(
                patient: patient, user: user, since: since?.instant, limit: limit == 0 ? nil : limit)
            let records = try ask(.auditList(query), socket: socket).auditRecords ?? []
            if json {
                try printJSON(records)
                return
            }
            print(AuditRecord.listText(records, limit: limit == 0 ? nil : limit), terminator: "")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit trail's chain; exit 0 intact, 2 broken.")
        @OptionGroup var socket: SocketOptions

        func run() throws {
            guard let result = try ask(.auditVerify, socket: socket).auditResult else {
                FileHandle.standardError.write(Data("syncctl: the daemon gave no verification\n".utf8))
                throw ExitCode(3)
            }
            print(AuditBreak.verifyText(result), terminator: "")
            let code = AuditBreak.exitCode(result)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

/// A `--since` value: a date or an ISO 8601 instant, kept as the trail's instant form.
struct SinceArgument: ExpressibleByArgument {
    var instant: String

    init?(argument: String) {
        guard let instant = AuditRecord.sinceInstant(argument) else { return nil }
        self.instant = instant
    }
}
