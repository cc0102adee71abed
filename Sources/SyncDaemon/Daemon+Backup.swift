import Foundation
import Logging
import SyncModel
import SyncStore

#if canImport(Glibc)
    import Glibc
#endif

/// What cannot be fetched again from the EHR (queued changes, the audit trail, accounts,
/// held decisions) copied to `[backup] dir` after every burst of local writes and every
/// `[backup] interval` when something changed (``Replica/writeBackup(to:)``); brought back
/// into a new replica at start: on `syncctl backup restore DIR`, on `syncctl replica
/// rebuild` (from the current file, as far as it reads), or by itself when the replica file
/// is missing and a backup exists.
extension Daemon {
    struct BackupState {
        var lastAt: Double?
        var lastError: String?
        var outboxEntries = 0
        var fingerprint: [String] = []
    }

    /// Files in the state directory asking the next start to replace the replica.
    static let restoreRequest = "ehr-sync.restore-request"
    static let rebuildRequest = "ehr-sync.rebuild-request"
    /// The exit status that asks systemd (`Restart=on-failure`) to start the daemon again.
    static let restartExitCode: Int32 = 75

    /// `syncctl backup now|restore`, `syncctl replica rebuild`.
    func handleBackup(_ command: ControlCommand) throws -> ControlResponse {
        switch command {
        case .backupNow:
            guard let dir = config.backup.dir else {
                return .failure("no [backup] dir is configured: set one (a USB disk, a NAS mount) in the configuration")
            }
            let summary = try backup(to: dir)
            logger.notice("operator action", metadata: ["action": "backup-now"])
            return .done(
                "backup written to \(dir): \(summary.outboxEntries) local change(s), \(summary.auditLines) audit line(s), "
                    + "\(summary.accounts) account(s)")
        case .backupRestore(let dir):
            let file = dir + "/" + Replica.backupFileName
            guard FileManager.default.fileExists(atPath: file) else {
                return .failure("no backup in \(dir) (expected \(Replica.backupFileName))")
            }
            try Self.writeRequest(Self.restoreRequest, content: dir, in: config.stateDirectory)
            requestRestart(reason: "restore from a backup")
            return .done(
                "the daemon restarts now and makes a new replica from the backup in \(dir) (the current one is kept "
                    + "aside); then it copies the practice's records from the EHR again and replays the carried changes"
            )
        case .replicaRebuild:
            try Self.writeRequest(Self.rebuildRequest, content: "", in: config.stateDirectory)
            requestRestart(reason: "rebuild")
            return .done(
                "the daemon restarts now and makes a new replica: what cannot be fetched again (local changes, audit "
                    + "trail, accounts, decisions) is carried over, the rest is copied from the EHR again; the current "
                    + "file is kept aside")
        default:
            return .failure("\(command.name) is not a backup command")
        }
    }

    /// Writes the backup and remembers the outcome for status.
    @discardableResult
    func backup(to dir: String) throws -> BackupSummary {
        do {
            let summary = try replica.writeBackup(to: dir)
            backupState.withLock {
                $0.lastAt = Date().timeIntervalSince1970
                $0.lastError = nil
                $0.outboxEntries = summary.outboxEntries
            }
            return summary
        } catch {
            backupState.withLock { $0.lastError = "\(error)" }
            logger.error("backup not written", metadata: ["dir": "\(dir)", "reason": "\(error)"])
            throw error
        }
    }

    /// The backup service: a backup at start, after every burst of local writes (woken by
    /// ``backupWakeup``, a few seconds later) and every interval, when something changed.
    func backupLoop() async {
        guard let dir = config.backup.dir else { return }
        var wait: Duration = .zero
        while !Task.isCancelled {
            await backupWakeup.wait(wait)
            wait = .milliseconds(Int64(config.backup.interval * 1000))
            // A burst of writes: let it finish.
            try? await Task.sleep(for: .seconds(2))
            guard !Task.isCancelled else { return }
            let fingerprint = (try? replica.backupFingerprint()) ?? []
            let state = backupState.withLock { $0 }
            if state.lastError == nil, state.lastAt != nil, fingerprint == state.fingerprint { continue }
            if (try? backup(to: dir)) != nil {
                backupState.withLock { $0.fingerprint = fingerprint }
            } else {
                wait = .seconds(30)
            }
        }
    }

    func backupStatus() -> BackupStatus? {
        guard let dir = config.backup.dir else { return nil }
        let state = backupState.withLock { $0 }
        let stale = state.lastAt.map { Date().timeIntervalSince1970 - $0 > 4 * config.backup.interval + 60 } ?? false
        return BackupStatus(
            dir: dir, lastAt: state.lastAt.map { FHIRInstant.format($0) }, lastError: state.lastError,
            outboxEntries: state.outboxEntries, stale: stale)
    }

    /// Asks for a graceful stop that ends with ``restartExitCode``.
    func requestRestart(reason: String) {
        restartRequested.withLock { $0 = true }
        logger.notice("restarting", metadata: ["reason": "\(reason)"])
        Task {
            try? await Task.sleep(for: .milliseconds(300))
            kill(getpid(), SIGTERM)
        }
    }

    static func writeRequest(_ name: String, content: String, in directory: String) throws {
        let path = directory + "/" + name
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(content.utf8), attributes: [.posixPermissions: 0o600])
        else { throw ReplicaError.database("cannot write \(path)") }
    }

    // MARK: At start

    /// Before the replica opens: a requested restore or rebuild, or a missing replica with a
    /// backup to bring back. Returns what was done, for the log.
    static func prepareReplica(config: SyncConfiguration, kek: KeyEncryptionKey, keySource: String, logger: Logger)
        throws -> String?
    {
        let directory = config.stateDirectory
        let fileManager = FileManager.default
        let replicaPath = directory + "/" + Replica.fileName
        let stamp = FHIRInstant.format(Date().timeIntervalSince1970).replacingOccurrences(of: ":", with: "-")
        func moveAside(_ label: String) throws -> String {
            let aside = replicaPath + ".\(label)-\(stamp)"
            for suffix in ["", "-wal", "-shm"] where fileManager.fileExists(atPath: replicaPath + suffix) {
                try fileManager.moveItem(atPath: replicaPath + suffix, toPath: aside + suffix)
            }
            return aside
        }
        if fileManager.fileExists(atPath: directory + "/" + rebuildRequest) {
            let salvage = directory + "/rebuild-\(stamp)"
            try fileManager.createDirectory(
                atPath: salvage, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let carried = try Replica.salvage(replica: replicaPath, to: salvage)
            let aside = try moveAside("damaged")
            try Replica.restore(
                backup: salvage + "/" + Replica.backupFileName, directory: directory, kek: kek, keySource: keySource)
            try fileManager.removeItem(atPath: salvage)
            try fileManager.removeItem(atPath: directory + "/" + rebuildRequest)
            return "replica rebuilt: \(carried.outboxEntries) local change(s), \(carried.auditLines) audit line(s), "
                + "\(carried.accounts) account(s) carried over"
                + (carried.unreadable.isEmpty ? "" : "; unreadable: \(carried.unreadable.joined(separator: ", "))")
                + "; the old file is kept as \(aside)"
        }
        if fileManager.fileExists(atPath: directory + "/" + restoreRequest) {
            let dir = try String(contentsOfFile: directory + "/" + restoreRequest, encoding: .utf8)
            let aside = fileManager.fileExists(atPath: replicaPath) ? try moveAside("replaced") : nil
            let restored = try Replica.restore(
                backup: dir + "/" + Replica.backupFileName, directory: directory, kek: kek, keySource: keySource)
            try fileManager.removeItem(atPath: directory + "/" + restoreRequest)
            return "replica restored from the backup in \(dir): \(restored.outboxEntries) local change(s), "
                + "\(restored.auditLines) audit line(s), \(restored.accounts) account(s)"
                + (aside.map { "; the previous file is kept as \($0)" } ?? "")
        }
        if !fileManager.fileExists(atPath: replicaPath), let dir = config.backup.dir,
            fileManager.fileExists(atPath: dir + "/" + Replica.backupFileName)
        {
            let restored = try Replica.restore(
                backup: dir + "/" + Replica.backupFileName, directory: directory, kek: kek, keySource: keySource)
            return "the replica was missing: restored from the backup in \(dir) (\(restored.outboxEntries) local "
                + "change(s), \(restored.auditLines) audit line(s)); the records are copied from the EHR again"
        }
        return nil
    }
}
