import Foundation
import SyncEngine
import SyncModel
import SyncServer
import SyncStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The sd_notify protocol, spoken directly (no libsystemd): datagrams to `$NOTIFY_SOCKET`.
///
/// READY=1 once the replica is open and the control socket listens; STATUS= with a one-line
/// summary; WATCHDOG=1 only while the sync loop shows signs of life; STOPPING=1 on shutdown.
final class SystemdNotifier: Sendable {
    let socketPath: String?
    /// Half of `WatchdogSec=` (from `$WATCHDOG_USEC`), or nil when no watchdog is armed.
    let watchdogInterval: Duration?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let usec = environment["WATCHDOG_USEC"].flatMap({ Int64($0) }), usec > 0,
            environment["WATCHDOG_PID"].flatMap({ Int32($0) }).map({ $0 == getpid() }) ?? true
        {
            watchdogInterval = .microseconds(usec / 2)
        } else {
            watchdogInterval = nil
        }
    }

    var enabled: Bool { socketPath != nil }

    func notify(_ message: String) {
        guard let path = socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr in
                sendto(fd, payload, payload.count, Int32(MSG_NOSIGNAL), addr, length)
            }
        }
    }
}

/// When the sync loop last showed a sign of life (a cycle step, a page, a request attempt),
/// or whether it is waiting for its next cycle (idle is alive too).
final class Liveness: Sendable {
    private let state = Mutex((last: ContinuousClock.now, idle: false))

    func beat() { state.withLock { $0.last = .now } }

    func setIdle(_ idle: Bool) {
        state.withLock {
            $0.idle = idle
            $0.last = .now
        }
    }

    /// Alive when idle, or when the last sign of life is more recent than `limit`.
    func isAlive(limit: Duration) -> Bool {
        state.withLock { $0.idle || $0.last.duration(to: .now) < limit }
    }
}
