public import Foundation
public import SyncModel
public import SyncStore

/// A real `ehr-syncd` process for integration tests: its own key, configuration, state
/// directory and control socket in a temporary folder.
public final class DaemonFixture: @unchecked Sendable {
    // @unchecked: `process` and `log` are touched only from the test's own task.
    public let dir: TemporaryDirectory
    public let configPath: String
    public let keyPath: String
    public let stateDir: String
    public let socketPath: String
    public let logPath: String
    /// The local API's address and credentials, when enabled (`localAPIAuthor:`).
    public let localAPI: LocalAPIAccess?
    var process: Process?

    /// Folder of the built binaries (`.build/debug`), or `$EHR_SYNC_BIN_DIR`.
    public static var binDir: String {
        if let dir = ProcessInfo.processInfo.environment["EHR_SYNC_BIN_DIR"], !dir.isEmpty { return dir }
        return TestData.repositoryRoot + "/.build/debug"
    }

    /// - Parameter extra: more TOML, appended to the `[sync]` table.
    /// - Parameter extra: more TOML tables, appended at the end (e.g. `[metrics]`).
    /// - Parameter localAPIAuthor: when given, `[local_api]` is enabled on a free loopback
    ///   port with a fresh token file (mode 0600) holding one `author token` line.
    public init(
        baseURL: String, sync: String = "", ehr: String = "", extra: String = "", localAPIAuthor: String? = nil,
        localAPIExtra: String = ""
    ) throws {
        dir = try TemporaryDirectory("ehr-syncd")
        configPath = dir.file("ehr-sync.toml")
        keyPath = dir.file("replica.key")
        stateDir = dir.file("state")
        socketPath = dir.file("control.sock")
        logPath = dir.file("daemon.log")
        try Data(KeyEncryptionKey.generate().base64FileContents.utf8).write(to: URL(fileURLWithPath: keyPath))
        chmod(keyPath, 0o600)
        var localAPITable = ""
        if let author = localAPIAuthor {
            let access = LocalAPIAccess(
                port: freeLoopbackPort(), author: author, token: LocalAPIAccess.randomToken(),
                tokenFile: dir.file("local-api.tokens"))
            try Data("\(access.author) \(access.token)\n".utf8).write(to: URL(fileURLWithPath: access.tokenFile))
            chmod(access.tokenFile, 0o600)
            localAPITable = """
                [local_api]
                listen = "127.0.0.1:\(access.port)"
                token_file = "\(access.tokenFile)"
                \(localAPIExtra)
                """
            localAPI = access
        } else {
            localAPI = nil
        }
        let config = """
            [ehr]
            base_url = "\(baseURL)"
            \(ehr.contains("requests_per_second") ? "" : "requests_per_second = 1000")
            \(ehr.contains("request_timeout") ? "" : "request_timeout = 30")
            \(ehr)
            [sync]
            \(sync.contains("page_size") ? "" : "page_size = 200")
            \(sync)
            [replica]
            state_dir = "\(stateDir)"
            [key]
            file = "\(keyPath)"
            [control]
            socket = "\(socketPath)"
            \(extra)
            \(localAPITable)
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    }

    /// Runs `ehr-syncd --once`; returns its exit status. Its log is appended to `logPath`.
    @discardableResult
    public func runOnce() throws -> Int32 {
        let p = try launch(["--config", configPath, "--once"])
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Starts the daemon in the foreground mode (background process).
    public func start(arguments: [String] = [], environment: [String: String] = [:]) throws {
        process = try launch(["--config", configPath] + arguments, environment: environment)
    }

    /// Sends a signal to the running daemon and waits for it to exit; returns its status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard let p = process else { return -1 }
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
        process = nil
        return p.terminationStatus
    }

    public var isRunning: Bool { process?.isRunning ?? false }

    func launch(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        p.executableURL = URL(fileURLWithPath: Self.binDir + "/ehr-syncd")
        p.arguments = arguments + ["--log-level", "debug"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardError = log
        p.standardOutput = log
        try p.run()
        return p
    }

    /// Everything the daemon logged so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs `syncctl` against this daemon; returns exit status and standard output.
    public func syncctl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try run(Self.binDir + "/syncctl", arguments)
    }

    /// `syncctl status --json`, decoded; nil while the daemon does not answer.
    public func status() throws -> StatusReport? {
        let (_, output) = try syncctl(["--socket", socketPath, "status", "--json"])
        return try? JSONDecoder().decode(StatusReport.self, from: Data(output.utf8))
    }

    /// Polls `condition` until it holds or `timeout` passes (a deadline, not a sleep used as
    /// synchronisation: the condition is what the test waits for).
    public static func waitUntil(timeout: Double = 120, interval: Double = 0.1, _ condition: () throws -> Bool) rethrows
        -> Bool
    {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(useconds_t(interval * 1_000_000))
        }
        return try condition()
    }

    /// Opens the daemon's replica (the daemon must not be running).
    public func openReplica() throws -> Replica {
        try Replica.open(directory: stateDir, kek: try KeySource.file(path: keyPath).load(), keySource: "test key")
    }

    /// The types the daemon mirrors and how, as it last saved them (daemon stopped).
    public func coverage() throws -> TypeCoverage {
        let replica = try openReplica()
        defer { replica.close() }
        guard let text = try replica.syncState.value(.coverage) else { return TypeCoverage() }
        return try JSONDecoder().decode(TypeCoverage.self, from: Data(text.utf8))
    }

    deinit {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }
}

/// Where the daemon's local API listens and how to authenticate to it.
public struct LocalAPIAccess: Sendable {
    public let port: Int
    public let author: String
    public let token: String
    public let tokenFile: String

    /// `http://127.0.0.1:PORT/fhir`
    public var baseURL: String { "http://127.0.0.1:\(port)/fhir" }

    /// A client using this access's token.
    public func client() -> LocalAPIClient { LocalAPIClient(baseURL: baseURL, token: token) }

    /// 48 random hexadecimal characters.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

extension DaemonFixture {
    /// Runs `syncctl ARGUMENTS --socket SOCKET` (the socket option last, so it reaches nested
    /// subcommands such as `outbox retry`).
    public func ctl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try syncctl(arguments + ["--socket", socketPath])
    }

    /// Runs `syncctl ARGUMENTS --socket SOCKET` with `input` as standard input (never a
    /// terminal: /dev/null when there is no input), e.g. a password.
    public func ctl(_ arguments: [String], input: String?) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binDir + "/syncctl")
        p.arguments = arguments + ["--socket", socketPath]
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        let stdin = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try p.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `syncctl outbox list --json [--all]`, decoded; nil when the command fails or its output
    /// does not decode (the command missing, the daemon not answering).
    public func outbox(all: Bool = false) throws -> [OutboxItem]? {
        let (status, output) = try ctl(["outbox", "list", "--json"] + (all ? ["--all"] : []))
        guard status == 0 else { return nil }
        return try? JSONDecoder().decode([OutboxItem].self, from: Data(output.utf8))
    }

    /// `syncctl conflicts list --json`, decoded; nil on failure.
    public func conflicts() throws -> [OutboxItem]? {
        let (status, output) = try ctl(["conflicts", "list", "--json"])
        guard status == 0 else { return nil }
        return try? JSONDecoder().decode([OutboxItem].self, from: Data(output.utf8))
    }

    /// `syncctl conflicts show SEQ --json`, decoded; nil on failure.
    public func conflict(_ seq: Int64) throws -> ConflictDetail? {
        let (status, output) = try ctl(["conflicts", "show", String(seq), "--json"])
        guard status == 0 else { return nil }
        return try? JSONDecoder().decode(ConflictDetail.self, from: Data(output.utf8))
    }
}

/// Runs a program to completion; returns its exit status and its standard output and error.
public func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (
    status: Int32, output: String
) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A TCP port free on 127.0.0.1 right now (the kernel's pick).
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

extension DaemonFixture {
    /// Runs the `sqlite3` shell on this daemon's replica file, as someone with the file would.
    public func sqlite(_ sql: String) throws -> (status: Int32, output: String) {
        guard
            let shell = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3", "/bin/sqlite3"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { throw HarnessError("the sqlite3 shell is not installed (apt-get install sqlite3)") }
        return try run(shell, [stateDir + "/" + Replica.fileName, sql])
    }

    /// Polls `syncctl status` until `condition` holds (the status then) or `timeout` passes (nil).
    public func waitForStatus(timeout: Double = 120, _ condition: (StatusReport) -> Bool) -> StatusReport? {
        var last: StatusReport?
        let met = Self.waitUntil(timeout: timeout, interval: 0.05) {
            last = (try? status()) ?? nil
            return last.map(condition) ?? false
        }
        return met ? last : nil
    }
}
