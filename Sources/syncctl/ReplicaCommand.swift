import ArgumentParser
import SyncModel

struct ReplicaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "The local copy itself.",
        subcommands: [Rebuild.self])

    struct Rebuild: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new replica from the EHR, carrying over what cannot be fetched again.",
            discussion: """
                When `syncctl verify` finds the replica damaged: the daemon restarts, copies the queued \
                local changes, the audit trail, the accounts and the held decisions out of the current \
                file (as far as it reads), keeps that file aside, and copies the practice's records from \
                the EHR again (administrators). Where the file is too damaged, restore the backup \
                instead (`syncctl backup restore DIR`).
                """)
        @OptionGroup var socket: SocketOptions

        func run() throws {
            print(try ask(.replicaRebuild, socket: socket).message ?? "rebuilding")
        }
    }
}
