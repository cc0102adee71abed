import ArgumentParser
import SyncModel

struct SyncNowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-now", abstract: "Start a sync cycle now instead of waiting for the next one.")

    @OptionGroup var socket: SocketOptions

    func run() throws {
        print(try ask(.syncNow, socket: socket).message ?? "started")
    }
}
