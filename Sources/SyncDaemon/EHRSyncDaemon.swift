import ArgumentParser
import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncServer
import SyncStore

/// `ehr-syncd`: mirrors the hosted EHR into the encrypted local replica.
@main
struct EHRSyncDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ehr-syncd",
        abstract: "Mirror the practice's records from the hosted EHR into the encrypted local replica.",
        discussion: """
            Runs in the foreground (systemd style) and logs to standard error, one event a line, \
            without any patient data. With --once, runs one full sync cycle and exits 0 when the \
            replica is up to date.
            """,
        version: EHRSync.version)

    @Option(name: .long, help: "Path of the TOML configuration file.")
    var config: String = "/etc/ehr-sync/ehr-sync.toml"

    @Flag(name: .long, help: "Run one full cycle (initial or incremental) and exit.")
    var once = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    mutating func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ehr-syncd")
        let daemon: Daemon
        do {
            daemon = try await Daemon.start(configPath: config, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("ehr-syncd: \(error.message)\n".utf8))
            throw ExitCode(error.exitCode)
        }
        if once {
            let ok = await daemon.runOnce()
            await daemon.shutdown()
            throw ExitCode(ok ? 0 : 1)
        }
        await daemon.runForever()
        await daemon.shutdown()
        // `backup restore` or `replica rebuild`: systemd starts the daemon again, which does it.
        if daemon.restartRequested.withLock({ $0 }) { throw ExitCode(Daemon.restartExitCode) }
    }
}
