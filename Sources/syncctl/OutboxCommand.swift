import ArgumentParser
import Foundation
import SyncModel

#if canImport(Glibc)
    import Glibc
#endif

struct OutboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "List local changes not yet on the EHR (to send, waiting, rejected, in conflict).",
        discussion: """
            Changes made in the local copy during an outage are queued and sent to the EHR when it \
            answers again. A change the EHR rejects is parked: fix the cause it gives, then send it \
            again with `syncctl outbox retry ID`. Conflicts are reviewed with `syncctl conflicts`.
            """,
        subcommands: [List.self, Retry.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List open local changes (the default).")
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Include changes already on the EHR or discarded.") var all = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let items = try ask(.outbox(all: all), socket: socket).outboxItems ?? []
            if json {
                try printJSON(items)
                return
            }
            print(OutboxItem.listText(items, all: all), terminator: "")
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a rejected (parked) change again, once its cause is fixed.")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "The change's ID, from `syncctl outbox`.") var id: EntryID

        func run() throws {
            print(try ask(.outboxRetry(seq: id.seq), socket: socket).message ?? "queued again")
        }
    }
}

/// An outbox entry number as shown by `syncctl outbox` (`12` or `#12`).
struct EntryID: ExpressibleByArgument {
    var seq: Int64

    init?(argument: String) {
        let digits = argument.hasPrefix("#") ? String(argument.dropFirst()) : argument
        guard let seq = Int64(digits), seq > 0 else { return nil }
        self.seq = seq
    }
}

/// Who runs syncctl, for the replica's audit trail: `name (uid N)`.
func operatorName() -> String {
    let uid = getuid()
    guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
    return "\(String(cString: name)) (uid \(uid))"
}

/// Pretty JSON with sorted keys, as the other `--json` outputs.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
