import ArgumentParser
import SyncModel

/// `syncctl`: staff and IT talk to the running daemon.
@main
struct SyncCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncctl",
        abstract: "Look at and steer ehr-sync, the practice's local copy of the EHR.",
        discussion: """
            syncctl talks to the running ehr-syncd over its control socket; it never opens the \
            replica or its key. Run `syncctl status` to see where things stand.
            """,
        version: EHRSync.version,
        subcommands: [
            StatusCommand.self, PauseCommand.self, ResumeCommand.self, SyncNowCommand.self, HeldCommand.self,
            OutboxCommand.self, ConflictsCommand.self, VerifyCommand.self, KeyCommand.self, ConfigCommand.self,
            UserCommand.self, AuditCommand.self, BackupCommand.self, ReplicaCommand.self,
        ])

    /// Declared here so `syncctl --socket PATH status` works; subcommands read the same group.
    @OptionGroup var socket: SocketOptions
}

/// Options shared by the commands that talk to the daemon.
struct SocketOptions: ParsableArguments {
    @Option(name: .long, help: "Control socket of the daemon.")
    var socket: String = "/run/ehr-sync/control.sock"
}
