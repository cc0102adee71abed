import ArgumentParser
import Foundation
import SyncModel

struct HeldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "held",
        abstract: "List server changes held for a decision (older versions, mass deletions).",
        discussion: """
            ehr-sync never applies a server change that would lose data without an operator: \
            versions older than the copy's (the EHR restored from a backup?) and mass deletions \
            are held. Check with the EHR's provider, then approve or reject them.
            """,
        subcommands: [List.self, Approve.self, Reject.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List held changes (the default).")
        @OptionGroup var socket: SocketOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let held = try ask(.held, socket: socket).heldChanges ?? []
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(held), as: UTF8.self))
                return
            }
            print(HeldCommand.table(held), terminator: "")
        }
    }

    struct Approve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply held changes to the copy (ROWS: numbers from `syncctl held`, or `all`).")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Row numbers separated by commas, or `all`.") var rows: String

        func run() throws {
            print(try ask(.decideHeld(.approve, rows: try heldRows(rows)), socket: socket).message ?? "done")
        }
    }

    struct Reject: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the copy as it is and discard held changes (ROWS or `all`).")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Row numbers separated by commas, or `all`.") var rows: String

        func run() throws {
            print(try ask(.decideHeld(.reject, rows: try heldRows(rows)), socket: socket).message ?? "done")
        }
    }

    static func table(_ held: [HeldChange]) -> String {
        guard !held.isEmpty else { return "No held changes.\n" }
        var out = "ROW   TYPE                      CHANGE            REASON       HELD AT\n"
        for h in held {
            let change = h.deletion ? "deletion" : "version \(h.versionId ?? "?")"
            out +=
                [
                    String(h.row).padding(toLength: 6, withPad: " ", startingAt: 0),
                    h.resourceType.padding(toLength: 26, withPad: " ", startingAt: 0),
                    change.padding(toLength: 18, withPad: " ", startingAt: 0),
                    h.reason.padding(toLength: 13, withPad: " ", startingAt: 0),
                    h.heldAt,
                ].joined() + "\n"
        }
        return out
    }
}

/// Row numbers as `syncctl held` lists them, or nil for `all`.
private func heldRows(_ text: String) throws -> [Int64]? {
    do {
        return try ControlCommand.rows(text)
    } catch {
        throw ValidationError(error.description)
    }
}
