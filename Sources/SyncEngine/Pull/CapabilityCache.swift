public import Logging
public import SyncModel
import Synchronization

/// The server's CapabilityStatement, read once per process and shared by pull and replay
/// (which types to mirror, whether creates can be conditional).
public final class CapabilityCache: Sendable {
    private let transport: any FHIRTransport
    private let logger: Logger
    private let cached = Mutex<ServerCapabilities?>(nil)

    public init(transport: any FHIRTransport, logger: Logger) {
        self.transport = transport
        self.logger = logger
    }

    /// The capabilities once read; nil before.
    public var known: ServerCapabilities? { cached.withLock { $0 } }

    /// The capabilities, read from `metadata` the first time.
    public func current() async throws -> ServerCapabilities {
        if let caps = known { return caps }
        let response = try await transport.get("metadata")
        guard response.status == 200 else { throw RemoteError.status(route: "metadata", code: response.status) }
        let caps = try ServerCapabilities.parse(response.body)
        cached.withLock { $0 = caps }
        logger.info(
            "server capabilities",
            metadata: [
                "types": "\(caps.searchableTypes.count)", "history_system": "\(caps.systemHistory)",
                "export_system": "\(caps.systemExport)", "export_group": "\(caps.groupExport)",
            ])
        return caps
    }
}
