// A real FHIR R4 server (sekmet-fhir, Python) for integration tests and benchmarks.
//
// All the work is done by Tests/harness/sekmet_harness.py (see Tests/harness/SEKMET_NOTES.md for how the
// server behaves); this wrapper only runs it with Foundation's Process and decodes its one-line JSON answers.
//
//     let server = try await FHIRTestServer.start(dataset: "small")   // ~1.5 s start + ~7 s load
//     defer { server.stop() }
//     let totals = try await server.counts()                           // ["Patient": 20, ...]
//
// Locations: the repo root is derived from #filePath (override: EHR_SYNC_REPO_ROOT); data sets are
// <repo>/../shared/fhir-data/<name> (override the folder of sets: EHR_SYNC_FHIR_DATA); the harness venv is
// <repo>/.build-venv, built once from Tests/harness/requirements.txt with `python3` (override: EHR_SYNC_PYTHON).
// Each server gets its own temporary folder (under EHR_SYNC_FHIR_TMP if set), removed when the object goes away.

import Foundation

/// A harness failure; `description` carries the harness' stderr (server.log tail on start failures).
public struct HarnessError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "FHIRTestServer: \(message)" }
}

/// What `load(dataset:)` did: resources per type (all PUT through transaction Bundles) and timing.
public struct FHIRLoadReport: Sendable, Decodable {
    public let set: String
    public let types: [String: Int]
    public let total: Int
    public let created: Int
    public let updated: Int
    public let elapsedSeconds: Double

    enum CodingKeys: String, CodingKey {
        case set, types, total, created, updated
        case elapsedSeconds = "elapsed_s"
    }
}

/// A SMART Backend Services client to register with the test server: `start(smartClient:)` then requires a
/// token from ``FHIRTestServer/tokenURL`` on every FHIR request (`metadata` excepted).
public struct SMARTClientRegistration: Sendable {
    public var clientID: String
    /// The client's JWK Set as JSON text, `{"keys": [...]}` (public keys).
    public var jwks: String
    /// Scopes the client may be granted.
    public var scopes: String
    /// Lifetime of the access tokens the server issues, in seconds.
    public var tokenLifetime: Int

    public init(clientID: String, jwks: String, scopes: String = "system/*.*", tokenLifetime: Int = 3600) {
        self.clientID = clientID
        self.jwks = jwks
        self.scopes = scopes
        self.tokenLifetime = tokenLifetime
    }
}

public final class FHIRTestServer: Sendable {
    /// sekmet's inbound validation (`validation.inbound`).
    public enum Validation: String, Sendable {
        case off, warn, strict
    }

    /// FHIR base, e.g. `http://127.0.0.1:41234/fhir` (no trailing slash).
    public let baseURL: String
    /// Stays the same across `restore(from:)`, so a proxy in front keeps working.
    public let port: Int
    /// The server's data folder (settings.yaml, sekmet.db + -wal/-shm, server.log, bulk/ export files).
    public let dataDir: String

    /// Temporary folder owning dataDir and the snapshots; removed on deinit.
    private let workDir: String
    private let state: LockedState

    /// Process id (= process group id) of the running server; changes on `restore(from:)`.
    public var pid: Int32 { state.withLock { $0.pid } }

    private init(baseURL: String, port: Int, pid: Int32, dataDir: String, workDir: String) {
        self.baseURL = baseURL
        self.port = port
        self.dataDir = dataDir
        self.workDir = workDir
        self.state = LockedState(pid: pid)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: workDir)
    }

    // MARK: - Lifecycle

    /// Starts a fresh, empty sekmet server (plus 6 `Basic` SubscriptionTopic resources it seeds itself) on
    /// 127.0.0.1 and, when `dataset` is given ("small", "medium" or a folder path), loads that data set.
    /// With `smartClient`, the server requires SMART Backend Services tokens (see ``tokenURL``); the harness
    /// loads without a token, so `dataset` must then be nil (PUT resources with a token instead).
    /// `validation` is sekmet's inbound structural check: `.off` (the default) accepts anything,
    /// `.strict` rejects malformed writes with 400 and an OperationOutcome.
    public static func start(
        dataset: String? = nil, port: Int? = nil, smartClient: SMARTClientRegistration? = nil,
        validation: Validation = .off
    ) async throws -> FHIRTestServer {
        if dataset != nil, smartClient != nil {
            throw HarnessError("a data set cannot be loaded into a server that requires SMART tokens")
        }
        let datasetDir = try dataset.map(datasetPath)  // fail before starting anything
        try await VenvOnce.shared.ensure()
        let fm = FileManager.default
        let tmpRoot = ProcessInfo.processInfo.environment["EHR_SYNC_FHIR_TMP"] ?? fm.temporaryDirectory.path
        let workDir = (tmpRoot as NSString).appendingPathComponent("ehr-sync-fhir-\(UUID().uuidString.prefix(8))")
        let dataDir = (workDir as NSString).appendingPathComponent("data")
        try fm.createDirectory(atPath: dataDir, withIntermediateDirectories: true)

        var args = ["start", "--data-dir", dataDir, "--validation", validation.rawValue]
        if let port { args += ["--port", String(port)] }
        if let smartClient {
            let jwksPath = (workDir as NSString).appendingPathComponent("smart-client-jwks.json")
            do {
                try Data(smartClient.jwks.utf8).write(to: URL(fileURLWithPath: jwksPath))
            } catch {
                try? fm.removeItem(atPath: workDir)
                throw error
            }
            args += [
                "--smart-client-id", smartClient.clientID, "--smart-jwks", jwksPath,
                "--smart-scopes", smartClient.scopes, "--token-lifetime", String(smartClient.tokenLifetime),
            ]
        }
        let info: StartInfo
        do {
            info = try decode(StartInfo.self, from: try await runHarness(args), command: "start")
        } catch {
            try? fm.removeItem(atPath: workDir)
            throw error
        }
        let server = FHIRTestServer(
            baseURL: info.baseURL, port: info.port, pid: info.pid,
            dataDir: dataDir, workDir: workDir)
        if let datasetDir {
            try await server.load(dataset: datasetDir)  // on failure deinit stops the server
        }
        return server
    }

    /// sekmet's SMART token endpoint, `<root>/auth/token` (used when started with a `smartClient`).
    public var tokenURL: String {
        (baseURL.hasSuffix("/fhir") ? String(baseURL.dropLast(5)) : baseURL) + "/auth/token"
    }

    /// Stops the server (SIGTERM to its process group, SIGKILL after 10 s). Idempotent; data stays until deinit.
    public func stop() {
        let pid = state.withLock { s -> Int32? in
            defer { s.running = false }
            return s.running ? s.pid : nil
        }
        guard let pid else { return }
        _ = try? Self.runHarnessSync(["stop", "--pid", String(pid)])
    }

    // MARK: - Data

    /// PUTs every resource of a data set (see `datasetPath`) in load_order.txt order.
    @discardableResult
    public func load(dataset: String) async throws -> FHIRLoadReport {
        let path = try Self.datasetPath(dataset)
        let out = try await Self.runHarness(["load", "--base-url", baseURL, "--set", path])
        return try Self.decode(FHIRLoadReport.self, from: out, command: "load")
    }

    /// Current (non-deleted) resource totals per type, from `GET [base]/<Type>?_summary=count` over all R4
    /// types; types with 0 are omitted. Includes the 6 `Basic` resources sekmet seeds at first start.
    public func counts() async throws -> [String: Int] {
        let out = try await Self.runHarness(["counts", "--base-url", baseURL])
        return try Self.decode([String: Int].self, from: out, command: "counts")
    }

    // MARK: - Snapshot / restore ("the EHR was restored from an older backup")

    /// Consistent copy of the server's store, taken online with SQLite's backup API (no stop needed).
    /// Returns the snapshot folder, which lives in this server's temporary folder.
    public func snapshot() throws -> String {
        let n = state.withLock { s -> Int in
            s.snapshots += 1
            return s.snapshots
        }
        let dest = (workDir as NSString).appendingPathComponent("snapshot-\(n)")
        _ = try Self.runHarnessSync(["snapshot", "--data-dir", dataDir, "--dest", dest])
        return dest
    }

    /// Stops the server, replaces its store with `snapshot`, and restarts it on the same port
    /// (same `baseURL`); versionIds, history and lastUpdated go back to the snapshot's state.
    public func restore(from snapshot: String) async throws {
        let pid = state.withLock { $0.pid }
        let out = try await Self.runHarness([
            "restore", "--data-dir", dataDir, "--snapshot", snapshot,
            "--pid", String(pid),
        ])
        let info = try Self.decode(StartInfo.self, from: out, command: "restore")
        guard info.port == port else {
            throw HarnessError("restore restarted on port \(info.port), expected \(port)")
        }
        state.withLock {
            $0.pid = info.pid
            $0.running = true
        }
    }

    // MARK: - Locations

    /// `<repo>`: three levels above this file (Tests/SyncTestSupport/FHIRTestServer.swift).
    public static var repoRoot: String {
        if let root = ProcessInfo.processInfo.environment["EHR_SYNC_REPO_ROOT"], !root.isEmpty { return root }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Folder of a data set: `name` itself when it contains a "/", else `$EHR_SYNC_FHIR_DATA/<name>` or
    /// `<repo>/../shared/fhir-data/<name>`. Throws when it has no load_order.txt (tests may skip on that).
    public static func datasetPath(_ name: String) throws -> String {
        let path: String
        if name.contains("/") {
            path = name
        } else if let sets = ProcessInfo.processInfo.environment["EHR_SYNC_FHIR_DATA"], !sets.isEmpty {
            path = (sets as NSString).appendingPathComponent(name)
        } else {
            let shared = URL(fileURLWithPath: repoRoot).deletingLastPathComponent()
                .appendingPathComponent("shared/fhir-data/\(name)")
            path = shared.standardizedFileURL.path
        }
        let order = (path as NSString).appendingPathComponent("load_order.txt")
        guard FileManager.default.fileExists(atPath: order) else {
            throw HarnessError("data set '\(name)' not found: no \(order)")
        }
        return path
    }

    static var harnessScript: String { repoRoot + "/Tests/harness/sekmet_harness.py" }

    /// Makes sure .build-venv (with its pinned packages) exists.
    static func ensureVenv() async throws { try await VenvOnce.shared.ensure() }
    static var venvPython: String { repoRoot + "/.build-venv/bin/python" }

    // MARK: - Running the harness

    private struct StartInfo: Decodable {
        let pid: Int32
        let port: Int
        let baseURL: String

        enum CodingKeys: String, CodingKey {
            case pid, port
            case baseURL = "base_url"
        }
    }

    /// Creates/refreshes .build-venv at most once per test process (the harness also locks across processes).
    private actor VenvOnce {
        static let shared = VenvOnce()
        private var task: Task<Void, any Error>?

        func ensure() async throws {
            if task == nil {
                task = Task {
                    let python = ProcessInfo.processInfo.environment["EHR_SYNC_PYTHON"] ?? "python3"
                    let result = try await FHIRTestServer.run(
                        "/usr/bin/env", [python, FHIRTestServer.harnessScript, "ensure-venv"])
                    try FHIRTestServer.check(result, command: "ensure-venv")
                }
            }
            do {
                try await task!.value
            } catch {
                task = nil  // let a later test retry (e.g. after a transient PyPI failure)
                throw error
            }
        }
    }

    private static func runHarness(_ args: [String]) async throws -> String {
        let result = try await run(venvPython, [harnessScript] + args)
        try check(result, command: args[0])
        return result.stdout
    }

    private static func runHarnessSync(_ args: [String]) throws -> String {
        let result = try runSync(venvPython, [harnessScript] + args)
        try check(result, command: args[0])
        return result.stdout
    }

    private static func check(_ result: ProcessResult, command: String) throws {
        guard result.status == 0 else {
            let err = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw HarnessError(
                "sekmet_harness \(command) exited with \(result.status): "
                    + (err.isEmpty ? result.stdout : err))
        }
    }

    private static func decode<T: Decodable>(_ type: T.Type, from stdout: String, command: String) throws -> T {
        // The harness prints exactly one JSON line; take the last non-empty line to be tolerant of noise.
        let line = stdout.split(separator: "\n").last(where: { !$0.isEmpty }).map(String.init) ?? ""
        do {
            return try JSONDecoder().decode(T.self, from: Data(line.utf8))
        } catch {
            throw HarnessError("cannot decode the output of sekmet_harness \(command) (\(error)): \(stdout)")
        }
    }

    struct ProcessResult: Sendable {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Output goes to temporary files, not pipes: nothing can block on a full pipe, and the detached server
    /// (which closes inherited descriptors anyway) can never keep a pipe open after the harness exits.
    private final class Capture {
        let outPath: String
        let errPath: String
        let out: FileHandle
        let err: FileHandle

        init() throws {
            let base = FileManager.default.temporaryDirectory
                .appendingPathComponent("ehr-sync-harness-\(UUID().uuidString)").path
            outPath = base + ".out"
            errPath = base + ".err"
            guard FileManager.default.createFile(atPath: outPath, contents: nil),
                FileManager.default.createFile(atPath: errPath, contents: nil)
            else {
                throw HarnessError("cannot create \(base).out/.err")
            }
            out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
            err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        }

        func finish(status: Int32) -> ProcessResult {
            try? out.close()
            try? err.close()
            let read = { (p: String) in (try? String(contentsOfFile: p, encoding: .utf8)) ?? "" }
            let result = ProcessResult(status: status, stdout: read(outPath), stderr: read(errPath))
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
            return result
        }
    }

    private static func makeProcess(_ executable: String, _ args: [String], _ capture: Capture) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = capture.out
        p.standardError = capture.err
        return p
    }

    static func run(_ executable: String, _ args: [String]) async throws -> ProcessResult {
        let capture = try Capture()
        let process = makeProcess(executable, args, capture)
        let status: Int32 = try await withCheckedThrowingContinuation { cont in
            process.terminationHandler = { cont.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                cont.resume(throwing: HarnessError("cannot run \(executable): \(error)"))
            }
        }
        return capture.finish(status: status)
    }

    static func runSync(_ executable: String, _ args: [String]) throws -> ProcessResult {
        let capture = try Capture()
        let process = makeProcess(executable, args, capture)
        do {
            try process.run()
        } catch {
            _ = capture.finish(status: -1)
            throw HarnessError("cannot run \(executable): \(error)")
        }
        process.waitUntilExit()
        return capture.finish(status: process.terminationStatus)
    }
}

/// Mutable server state behind a lock (pid changes on restore; stop must run once).
private final class LockedState: @unchecked Sendable {
    struct Value {
        var pid: Int32
        var running = true
        var snapshots = 0
    }

    private let lock = NSLock()
    private var value: Value

    init(pid: Int32) { value = Value(pid: pid) }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
