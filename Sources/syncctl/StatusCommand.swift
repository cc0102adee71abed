import ArgumentParser
import Foundation
import SyncModel

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show where ehr-sync stands: EHR state, data age, records, what needs attention.",
        discussion: """
            Exit codes follow the monitoring (Nagios) convention: 0 all is well, 1 warning \
            (something needs a look), 2 critical (the EHR is unreachable or sync fails), \
            3 unknown (the daemon cannot be reached).
            """)

    @OptionGroup var socket: SocketOptions

    @Flag(name: .long, help: "Print JSON for scripts and monitoring.")
    var json = false

    func run() async throws {
        let response: ControlResponse
        do {
            response = try ControlClient.send(ControlRequest(.status, actor: operatorName()), socket: socket.socket)
        } catch {
            FileHandle.standardError.write(Data("syncctl: \(error)\n".utf8))
            throw ExitCode(3)
        }
        guard let status = response.statusReport else {
            FileHandle.standardError.write(Data("syncctl: \(response.error ?? "the daemon gave no status")\n".utf8))
            throw ExitCode(3)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            var data = try encoder.encode(status)
            data.append(0x0A)
            FileHandle.standardOutput.write(data)
        } else {
            print(status.text(now: Date().timeIntervalSince1970), terminator: "")
        }
        if status.exitCode != 0 { throw ExitCode(status.exitCode) }
    }
}
