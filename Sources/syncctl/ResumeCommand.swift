import ArgumentParser
import SyncModel

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Start syncing again after `syncctl pause`.")

    @OptionGroup var socket: SocketOptions

    func run() throws {
        print(try ask(.resume, socket: socket).message ?? "resumed")
    }
}
