import ArgumentParser
import SyncModel

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract:
            "Check the replica: SQLite's integrity check, opening every record, and each table's rows against its sealed digest."
    )

    @OptionGroup var socket: SocketOptions

    func run() throws {
        guard let report = try ask(.verify, socket: socket).verifyReport else { throw ExitCode(3) }
        print("SQLite integrity: \(report.sqlite)")
        print("Records checked:  \(report.rowsChecked)")
        if report.rowsWithoutOutline > 0 {
            // Rows from before version 6 until the daemon's background upgrade reaches them.
            print("Awaiting upgrade: \(report.rowsWithoutOutline) (outlines added in the background)")
        }
        if report.failures.isEmpty {
            print("Records failing:  none")
        } else {
            print("Records failing:  \(report.failures.count)")
            for failure in report.failures.prefix(20) { print("  \(failure)") }
        }
        if let problems = report.rowSetProblems {
            if problems.isEmpty {
                print("Row sets:         intact (no row deleted, put back or added outside ehr-syncd)")
            } else {
                print("Row sets:         BROKEN")
                for problem in problems { print("  \(problem)") }
            }
        }
        if !report.ok { throw ExitCode(2) }
    }
}
