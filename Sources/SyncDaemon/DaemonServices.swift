import Foundation
import Logging
import ServiceLifecycle
import SyncServer

/// The daemon's long-running parts as services of one `ServiceGroup`: the framework starts
/// them, turns SIGTERM/SIGINT into a graceful shutdown, and stops them in reverse order of
/// this list, so the sync loop and the background work end first, then the listeners, and
/// only then does the shell close the replica.
extension Daemon {
    func services() -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let open = listeners.withLock { $0 }
        if let server = open.metrics {
            services.append(.init(service: Listener(name: "metrics") { await server.stop() }))
        }
        if let server = open.control {
            services.append(.init(service: Listener(name: "control") { await server.stop() }))
        }
        if let server = open.localAPI {
            services.append(.init(service: Listener(name: "local API") { await server.stop() }))
        }
        // The one-time upgrade ends once every row has its outline; the others run until shutdown.
        services.append(
            .init(
                service: Background(name: "outline fill") { await self.fillOutlines() },
                successTerminationBehavior: .ignore))
        services.append(.init(service: Background(name: "re-encryption") { await self.reencrypt() }))
        // Ends at once without a [backup] dir.
        services.append(
            .init(
                service: Background(name: "backup") { await self.backupLoop() }, successTerminationBehavior: .ignore))
        // The check at start covers counts and the small tables; this one, once, every row.
        services.append(
            .init(
                service: Background(name: "integrity check") { await self.checkIntegrityInBackground() },
                successTerminationBehavior: .ignore))
        services.append(.init(service: Background(name: "watchdog") { await self.watchdog() }))
        // Last in the list, so the first told to stop: it says so to the log and to systemd.
        let loop = Background(name: "sync loop") { await self.syncLoop() }
        services.append(
            .init(
                service: loop.onShutdown {
                    self.logger.notice("stopping")
                    self.notifier.notify("STOPPING=1")
                }))
        return services
    }

    /// Runs every service until SIGTERM or SIGINT, then stops them in order.
    func runForever() async {
        // A parent may have started us with these signals blocked (Foundation's Process
        // does): unblock them, or SIGTERM would never reach the service group.
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGTERM, SIGINT] { sigaddset(&set, number) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
        let group = ServiceGroup(
            configuration: .init(
                services: services(), gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("a service failed", metadata: ["reason": "\(error)"])
        }
    }
}

/// Work that runs until shutdown, then is cancelled (an HTTP request in flight is abandoned;
/// every write it made is committed or not at all).
struct Background: Service, CustomStringConvertible {
    let name: String
    var description: String { name }
    let work: @Sendable () async -> Void
    var shutdownNotice: (@Sendable () -> Void)?

    init(name: String, work: @escaping @Sendable () async -> Void) {
        self.name = name
        self.work = work
    }

    /// The same work, with `notice` called as soon as its shutdown starts.
    func onShutdown(_ notice: @escaping @Sendable () -> Void) -> Background {
        var copy = self
        copy.shutdownNotice = notice
        return copy
    }

    func run() async throws {
        let notice = shutdownNotice
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown { await work() }
        } onGracefulShutdown: {
            notice?()
        }
    }
}

/// A listener started with the daemon (it answers as soon as it is bound); stopped at shutdown.
struct Listener: Service, CustomStringConvertible {
    let name: String
    var description: String { name }
    let stop: @Sendable () async -> Void

    func run() async throws {
        try? await gracefulShutdown()
        await stop()
    }
}
