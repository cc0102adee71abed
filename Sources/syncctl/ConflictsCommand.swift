import ArgumentParser
import Foundation
import SyncModel

struct ConflictsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts",
        abstract: "Review local changes that conflict with changes made on the EHR meanwhile.",
        discussion: """
            When a record was changed both here and on the EHR in ways that cannot be merged \
            (or deleted on one side and changed on the other), the local change waits for a \
            person: look at it with `syncctl conflicts show ID`, then keep one side or send a \
            merged record with `syncctl conflicts resolve ID`.
            """,
        subcommands: [List.self, Show.self, Resolve.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List conflicts waiting for review (the default).")
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let items = try ask(.conflicts, socket: socket).outboxItems ?? []
            if json {
                try printJSON(items)
                return
            }
            print(OutboxItem.conflictsText(items), terminator: "")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a conflict: where the versions disagree, and the three versions in full.")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "The conflict's ID, from `syncctl conflicts`.") var id: EntryID
        @Flag(name: .long, help: "Print JSON (the three versions as compact JSON texts).") var json = false

        func run() throws {
            guard let detail = try ask(.conflictShow(seq: id.seq), socket: socket).conflictDetail else {
                FileHandle.standardError.write(Data("syncctl: the daemon gave no conflict\n".utf8))
                throw ExitCode(1)
            }
            if json {
                try printJSON(detail)
                return
            }
            print(detail.text(), terminator: "")
        }
    }

    struct Resolve: ParsableCommand {
        enum Side: String, ExpressibleByArgument, CaseIterable {
            case local, remote
        }

        static let configuration = CommandConfiguration(
            abstract: "Settle a conflict: keep this practice's version, keep the EHR's, or send a merged record.",
            discussion: """
                --keep local sends this practice's version over the EHR's; --keep remote keeps the \
                EHR's version and closes the local change; --file sends the record in FILE (FHIR \
                JSON of the same record, e.g. edited from `syncctl conflicts show ID --json`). \
                Give exactly one. The decision is recorded with your user name.
                """)
        @OptionGroup var socket: SocketOptions
        @Argument(help: "The conflict's ID, from `syncctl conflicts`.") var id: EntryID
        @Option(name: .long, help: "The version to keep: local or remote.") var keep: Side?
        @Option(name: .long, help: "A file holding the merged record (JSON).") var file: String?

        func validate() throws {
            guard (keep == nil) != (file == nil) else {
                throw ValidationError("give exactly one of --keep local|remote and --file FILE")
            }
        }

        func run() throws {
            let choice: ControlCommand.ConflictKeep =
                if let file { .file(try Self.read(file)) } else { keep == .local ? .local : .remote }
            let command = ControlCommand.conflictResolve(seq: id.seq, keep: choice)
            let size = (try? JSONEncoder().encode(ControlRequest(command, actor: operatorName())))?.count
            if let size, size >= ControlRequest.maxBytes {
                FileHandle.standardError.write(
                    Data(
                        "syncctl: \(file ?? "the request") is too large for the control socket (limit \(ControlRequest.maxBytes / 1024) KiB)\n"
                            .utf8))
                throw ExitCode(1)
            }
            print(try ask(command, socket: socket).message ?? "resolved")
        }

        /// The merged record's text; a clear error when it cannot be read.
        static func read(_ file: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("syncctl: cannot read \(file)\n".utf8))
                throw ExitCode(1)
            }
            guard let text = String(data: data, encoding: .utf8), !text.isEmpty else {
                FileHandle.standardError.write(Data("syncctl: \(file) is empty or not UTF-8 text\n".utf8))
                throw ExitCode(1)
            }
            return text
        }
    }
}
