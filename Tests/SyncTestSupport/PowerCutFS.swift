import Foundation

/// A directory whose unsynced writes a test can throw away, as a power cut would
/// (`Tests/harness/powercut_fs.py`: FUSE over a backing directory, bytes reach it only when
/// fsynced). Kill -9 of a process keeps the kernel's page cache; this does not.
///
/// ```swift
/// let fs = try PowerCutFS(mountPoint: fixture.stateDir)
/// try fs.mount()
/// fixture.stop(signal: SIGKILL); try fs.cut(); try fixture.start()
/// ```
public final class PowerCutFS: @unchecked Sendable {
    public let mountPoint: String
    /// Where the durable bytes are.
    public let backing: TemporaryDirectory
    private var process: Process?
    public private(set) var cuts = 0

    /// Whether this machine can run it: root, /dev/fuse, libfuse2, the venv's fusepy, and a
    /// kernel that lets this process mount (probed once with a real mount).
    public static let available: Bool = {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse"),
            FileManager.default.isExecutableFile(atPath: FHIRTestServer.venvPython)
        else { return false }
        let lib = [
            "/usr/lib/x86_64-linux-gnu/libfuse.so.2", "/usr/lib/aarch64-linux-gnu/libfuse.so.2", "/lib/libfuse.so.2",
        ]
        guard lib.contains(where: { FileManager.default.fileExists(atPath: $0) }),
            let probe = try? TemporaryDirectory("powercut-probe"),
            let fs = try? PowerCutFS(mountPoint: probe.path + "/mnt")
        else { return false }
        defer { fs.unmount() }
        return (try? fs.mount()) != nil
    }()

    /// Call once before the first `mount` (the venv holds fusepy).
    public static func prepare() async throws { try await FHIRTestServer.ensureVenv() }

    public init(mountPoint: String) throws {
        self.mountPoint = mountPoint
        backing = try TemporaryDirectory("powercut-backing")
        chmod(backing.path, 0o700)
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
    }

    /// Mounts the file system over `mountPoint`; returns once it answers.
    public func mount() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: FHIRTestServer.venvPython)
        p.arguments = [FHIRTestServer.repoRoot + "/Tests/harness/powercut_fs.py", backing.path, mountPoint]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        var line = Data()
        let deadline = Date().addingTimeInterval(30)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            p.terminate()
            throw PowerCutError(message: "powercut_fs.py did not mount \(mountPoint)")
        }
    }

    /// Cuts the power: everything not fsynced is gone (the file system's process is killed with
    /// what it held in memory), then the directory is mounted again over the durable bytes.
    /// Stop the processes using it first (a cut stops every process on the machine).
    public func cut() throws {
        killAndUnmount()
        cuts += 1
        try mount()
    }

    /// Unmounts (what was not fsynced is dropped, as in a cut).
    public func unmount() { killAndUnmount() }

    private func killAndUnmount() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        process = nil
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = ["-l", mountPoint]
        umount.standardError = FileHandle.nullDevice
        if (try? umount.run()) != nil { umount.waitUntilExit() }
    }

    deinit { killAndUnmount() }
}

public struct PowerCutError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
