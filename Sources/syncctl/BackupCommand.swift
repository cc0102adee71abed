import ArgumentParser
import Foundation
import SyncModel

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "The copy of what cannot be fetched again from the EHR ([backup] dir).",
        discussion: """
            The daemon copies queued local changes, the audit trail, staff accounts and held \
            decisions to [backup] dir (a USB disk, a NAS mount) after every burst of local writes \
            and every [backup] interval; encrypted as in the replica, so the key is needed to use it. \
            `syncctl status` shows when it last did (administrators).
            """,
        subcommands: [Now.self, Restore.self])

    struct Now: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the backup now.")
        @OptionGroup var socket: SocketOptions

        func run() throws {
            print(try ask(.backupNow, socket: socket).message ?? "written")
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new replica from the backup in DIR (the daemon restarts to do it).",
            discussion: """
                For a new machine or a lost state disk: install ehr-sync with the same key (or a key file \
                from the printed recovery key, `syncctl key recover`), start it, then run this. The daemon \
                restarts, brings back the queued changes, the audit trail and the accounts, copies the \
                practice's records from the EHR again and replays the changes. A replica already there is \
                kept aside, never deleted.
                """)
        @OptionGroup var socket: SocketOptions
        @Argument(help: "The folder holding ehr-sync-backup.sqlite (read by the daemon).") var dir: String

        func run() throws {
            let absolute = URL(fileURLWithPath: dir).standardizedFileURL.path
            print(try ask(.backupRestore(dir: absolute), socket: socket).message ?? "restoring")
        }
    }
}
