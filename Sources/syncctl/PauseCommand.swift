import ArgumentParser
import SyncModel

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Stop starting sync cycles (for maintenance); the copy stays readable.")

    @OptionGroup var socket: SocketOptions

    func run() throws {
        print(try ask(.pause, socket: socket).message ?? "paused")
    }
}
