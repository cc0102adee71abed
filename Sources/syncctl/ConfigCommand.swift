import ArgumentParser
import Foundation
import SyncModel

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration file without starting anything.",
            discussion: "Reads only the file given (never the key); exits 0 when valid, 1 with the reason otherwise.")

        @Argument(help: "The TOML configuration file.") var file: String

        func run() throws {
            do {
                let config = try SyncConfiguration.load(path: file)
                print("\(file): valid")
                print("  EHR:        \(config.ehr.baseURL.absoluteString)")
                print("  state dir:  \(config.stateDirectory)")
                print("  key:        \(config.keyFile.map { "file \($0)" } ?? "systemd credential replica-key")")
                print(
                    "  types:      \(config.sync.resourceTypes?.joined(separator: ", ") ?? "from the server's CapabilityStatement")"
                )
            } catch {
                FileHandle.standardError.write(Data("syncctl: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
