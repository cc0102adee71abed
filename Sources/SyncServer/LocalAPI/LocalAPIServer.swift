import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
public import NIOCore
import ServiceLifecycle
import SyncEngine
public import SyncModel
public import SyncStore

/// What the local API needs from the daemon.
public struct LocalAPIHandlers: Sendable {
    /// Queues a change durably (returns after the commit).
    public var enqueue: @Sendable (LocalChange) throws(OutboxError) -> QueuedChange
    /// The local view of one resource.
    public var read: @Sendable (_ type: String, _ id: String) throws(ReplicaError) -> LocalView
    /// Server time the replica is complete up to, for the freshness header.
    public var dataAsOf: @Sendable () -> String?
    /// Called after a change was queued (to start replay when the EHR is up).
    public var queued: @Sendable () -> Void
    /// Resource types mirrored locally (for the CapabilityStatement); called per request, so cheap.
    public var types: @Sendable () -> [String] = { [] }
    /// A search on the local view.
    public var search: @Sendable (SearchRequest) throws(ReplicaError) -> SearchPage
    /// `Patient/[id]/$everything` on the local view; nil for an unknown patient.
    public var everything: @Sendable (String) throws(ReplicaError) -> [SearchBundle.Entry]?
    /// Records an access to patient data (actor, action, the patients it exposed, target) in
    /// the audit trail; a failure refuses the request.
    public var audit:
        @Sendable (_ actor: String, _ action: String, _ patients: [String], _ target: String?)
            async throws(ReplicaError)
            -> Void = { _, _, _, _ in }

    public init(
        enqueue: @escaping @Sendable (LocalChange) throws(OutboxError) -> QueuedChange,
        read: @escaping @Sendable (String, String) throws(ReplicaError) -> LocalView,
        search: @escaping @Sendable (SearchRequest) throws(ReplicaError) -> SearchPage,
        everything: @escaping @Sendable (String) throws(ReplicaError) -> [SearchBundle.Entry]?,
        dataAsOf: @escaping @Sendable () -> String?, queued: @escaping @Sendable () -> Void
    ) {
        self.enqueue = enqueue
        self.read = read
        self.search = search
        self.everything = everything
        self.dataAsOf = dataAsOf
        self.queued = queued
    }
}

/// The practice-side FHIR endpoint (Hummingbird): reads from the replica's local view, and
/// `POST`/`PUT`/`DELETE` into the outbox, online or not. A write is answered only once it is
/// committed durably. Every request needs a bearer token from ``LocalCredentials``.
///
/// Every response carries `X-Data-As-Of`: the server time the mirrored data is complete up to.
public final class LocalAPIServer: Sendable {
    /// Header naming the data's age.
    public static let freshnessHeader = "X-Data-As-Of"
    /// Header naming the outbox entry a write went into.
    public static let entryHeader = "X-Outbox-Entry"

    public let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    /// Starts listening on `host:port` (loopback); returns once bound.
    public static func start(
        host: String, port: Int, credentials: LocalCredentials, maxBodyBytes: Int, handlers: LocalAPIHandlers,
        web: WebViewer? = nil, tls: TLSIdentity? = nil, allowedHosts: AllowedHosts? = nil,
        limits: ConnectionLimits = ConnectionLimits(), logger: Logger
    ) async throws -> LocalAPIServer {
        let router = Router(context: LocalRequestContext.self)
        router.add(middleware: HostCheck(allowed: allowedHosts, https: tls != nil))
        let api = Routes(
            https: tls != nil, credentials: credentials, maxBodyBytes: maxBodyBytes, handlers: handlers, logger: logger)
        api.register(on: router)
        web?.register(on: router)
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let (stream, continuation) = AsyncStream.makeStream(of: Result<Int, any Error>.self)
        let count = ConnectionGuard.Count(limit: limits.maxConnections)
        let headerTimeout = limits.headerTimeout
        let guardLogger = quiet
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [
                ConnectionGuard(count: count, headerTimeout: headerTimeout, logger: guardLogger)
            ],
            idleTimeout: limits.idleTimeout)
        let app = Application(
            router: router,
            server: try tls.map { try .tls(.http1(configuration: http1), tlsConfiguration: $0.serverConfiguration) }
                ?? .http1(configuration: http1),
            configuration: .init(address: .hostname(host, port: port), serverName: "ehr-sync"),
            onServerRunning: { channel in
                continuation.yield(.success(channel.localAddress?.port ?? port))
            },
            logger: quiet)
        // A service group of its own, without signal handlers (the daemon owns SIGTERM):
        // stop() asks for a graceful shutdown, so requests in flight finish.
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: quiet))
        let task = Task {
            do {
                try await group.run()
            } catch {
                continuation.yield(.failure(error))
                throw error
            }
            continuation.finish()
        }
        for await result in stream {
            switch result {
            case .success(let bound):
                logger.info(
                    "local API",
                    metadata: ["listen": "\(host):\(bound)", "https": "\(tls != nil)"])
                return LocalAPIServer(port: bound, group: group, task: task)
            case .failure(let error):
                throw error
            }
        }
        throw CancellationError()
    }

    /// Stops accepting connections, lets requests in flight finish, and returns when done.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}

/// What one listener lets clients hold.
public struct ConnectionLimits: Sendable {
    /// Open connections at once; more are closed as they arrive.
    public var maxConnections = 256
    /// Time to send a complete request head, after connecting or after the previous answer.
    public var headerTimeout: TimeAmount = .seconds(20)
    /// A connection with nothing read or written for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)

    public init() {}
}

/// Refuses a request whose `Host` is not one of the practice's names for this machine
/// (``AllowedHosts``): 421, before any route. Over HTTPS every answer also carries HSTS.
struct HostCheck: RouterMiddleware {
    typealias Context = LocalRequestContext
    let allowed: AllowedHosts?
    let https: Bool

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let allowed, !allowed.allows(authority: request.head.authority) {
            return Response(
                status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "This address is not one of this ehr-sync's names.\n")))
        }
        var response = try await next(request, context)
        if https { response.headers[.strictTransportSecurity] = "max-age=31536000" }
        return response
    }
}

/// The request context: Hummingbird's basics plus the client's address (login throttling
/// per address).
struct LocalRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Who the bearer token names, set by ``BearerAuthentication`` on every `/fhir` route.
    var author = ""

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// Authorization for the local FHIR API, once for every route under `/fhir`: a bearer token
/// from the local API credentials, or 401 before any handler runs. The author the token names
/// goes into the request context for the audit trail.
struct BearerAuthentication: RouterMiddleware {
    typealias Context = LocalRequestContext
    let routes: Routes

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let grant = routes.credentials.grant(forAuthorization: request.headers[.authorization]) else {
            return routes.unauthorized()
        }
        // Least privilege: a read token never queues a change; a write-only token reads nothing.
        let writes =
            request.method == .post || request.method == .put || request.method == .delete
            || request.method == .patch
        let needed: LocalCredentials.Scope = writes ? .write : .read
        let isMetadata = request.uri.path.hasSuffix("/metadata")
        if !grant.scope.contains(needed) && !isMetadata {
            routes.logger.notice(
                "local API request refused: token scope", metadata: ["method": "\(request.method)"])
            return routes.outcome(
                .forbidden, "forbidden",
                writes
                    ? "this token may read only (its scope in the credentials file is read)"
                    : "this token may write only (its scope in the credentials file is write)")
        }
        var context = context
        context.author = grant.author
        return try await next(request, context)
    }
}

/// The routes, with their checks. Errors are OperationOutcomes without record content.
struct Routes: Sendable {
    let https: Bool
    let credentials: LocalCredentials
    let maxBodyBytes: Int
    let handlers: LocalAPIHandlers
    let logger: Logger

    func register(on router: Router<LocalRequestContext>) {
        let fhir = router.group("fhir").add(middleware: BearerAuthentication(routes: self))
        fhir.get("metadata") { _, _ in
            return respond(.ok, json: Self.capabilityStatement(types: handlers.types()))
        }
        fhir.get("{type}/{id}") { _, context in
            let actor = context.author
            let (type, id) = (context.parameters.get("type") ?? "", context.parameters.get("id") ?? "")
            guard FHIRID.isValidType(type), FHIRID.isValid(id) else {
                return outcome(.badRequest, "invalid", "not a resource type and id")
            }
            do {
                let view = try handlers.read(type, id)
                let body: Data? =
                    switch view {
                    case .pending(let data, _, _): data
                    case .server(let stored): stored.json
                    default: nil
                    }
                if let body {
                    try await handlers.audit(
                        actor, "read", PatientAttribution.patients(in: body, type: type, id: id), "\(type)/\(id)")
                }
                switch view {
                case .pending(let body, let seq, _):
                    return respond(.ok, json: body, extra: [(LocalAPIServer.entryHeader, "\(seq)")])
                case .server(let stored):
                    var extra: [(String, String)] = []
                    if let v = stored.versionId { extra.append(("ETag", "W/\"\(v)\"")) }
                    return respond(.ok, json: stored.json, extra: extra)
                case .deletedLocally:
                    return outcome(.gone, "deleted", "deleted locally; the deletion is queued for the EHR")
                case .notFound:
                    return outcome(.notFound, "not-found", "no \(type) with that id in the local copy")
                }
            } catch {
                logger.error("local read failed", metadata: ["type": "\(type)", "reason": "\(error)"])
                return failure(error, "the local copy could not be read")
            }
        }
        fhir.get("{type}") { request, context in
            let actor = context.author
            let type = context.parameters.get("type") ?? ""
            guard FHIRID.isValidType(type) else { return outcome(.notFound, "not-found", "not a resource type") }
            let pairs = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            let search: SearchRequest
            do throws(SearchError) {
                search = try SearchRequest.parse(type: type, query: pairs)
            } catch {
                return outcome(.badRequest, "not-supported", error.description)
            }
            do {
                let page = try handlers.search(search)
                // Every patient the page shows, its matches and what they `_include`d, is
                // named in the trail and counted by the unusual-reading alert.
                let shown = (page.matches + page.included).lazy.map {
                    (type: $0.resourceType, id: $0.id, json: $0.json)
                }
                try await handlers.audit(
                    actor, "search", PatientAttribution.patients(in: shown), "\(type) search, \(page.total) results")
                let base = baseURL(request)
                func link(offset: Int) -> String {
                    var items = pairs.filter { $0.0 != "_offset" }
                    items.append(("_offset", String(offset)))
                    return "\(base)/\(type)?"
                        + items.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
                }
                let next =
                    search.offset + search.count < page.total && search.count > 0
                    ? link(offset: search.offset + search.count) : nil
                let previous = search.offset > 0 ? link(offset: max(0, search.offset - search.count)) : nil
                let bundle = SearchBundle.searchsetBuffer(
                    base: base, links: .init(selfURL: link(offset: search.offset), next: next, previous: previous),
                    total: page.total, matches: page.matches, included: page.included, lastUpdated: handlers.dataAsOf())
                return respond(.ok, body: bundle)
            } catch {
                logger.error("local search failed", metadata: ["type": "\(type)", "reason": "\(error)"])
                return failure(error, "the local copy could not be searched")
            }
        }
        // Registered under {type}: a literal "Patient" segment would shadow GET /fhir/{type}.
        fhir.get("{type}/{id}/$everything") { request, context in
            let actor = context.author
            guard context.parameters.get("type") == "Patient" else {
                return outcome(.notFound, "not-supported", "$everything is supported on Patient only")
            }
            let id = context.parameters.get("id") ?? ""
            guard FHIRID.isValid(id) else { return outcome(.badRequest, "invalid", "not a resource id") }
            do {
                guard let resources = try handlers.everything(id) else {
                    return outcome(.notFound, "not-found", "no Patient with that id in the local copy")
                }
                try await handlers.audit(actor, "everything", [id], "Patient/\(id)/$everything")
                let base = baseURL(request)
                let bundle = SearchBundle.searchsetBuffer(
                    base: base, links: .init(selfURL: "\(base)/Patient/\(id)/$everything"), total: resources.count,
                    matches: resources, lastUpdated: handlers.dataAsOf())
                return respond(.ok, body: bundle)
            } catch {
                logger.error("local $everything failed", metadata: ["reason": "\(error)"])
                return failure(error, "the local copy could not be read")
            }
        }
        fhir.get("{type}/{id}/_history/{vid}") { _, context in
            let (type, id) = (context.parameters.get("type") ?? "", context.parameters.get("id") ?? "")
            let vid = context.parameters.get("vid") ?? ""
            guard FHIRID.isValidType(type), FHIRID.isValid(id) else {
                return outcome(.badRequest, "invalid", "not a resource type and id")
            }
            do {
                if case .server(let stored) = try handlers.read(type, id), stored.versionId == vid {
                    // A version read exposes the record like a read: recorded first.
                    try await handlers.audit(
                        context.author, "read", PatientAttribution.patients(in: stored.json, type: type, id: id),
                        "\(type)/\(id)/_history/\(vid)")
                    return respond(.ok, json: stored.json, extra: [("ETag", "W/\"\(vid)\"")])
                }
                return outcome(
                    .notFound, "not-found", "the local copy keeps only the current version of each record")
            } catch {
                return failure(error, "the local copy could not be read")
            }
        }
        fhir.post("{type}") { request, context in
            try await write(request, context, operation: .create)
        }
        fhir.put("{type}/{id}") { request, context in
            try await write(request, context, operation: .update)
        }
        fhir.delete("{type}/{id}") { request, context in
            try await write(request, context, operation: .delete)
        }
    }

    func write(_ request: Request, _ context: LocalRequestContext, operation: OutboxOperation) async throws
        -> Response
    {
        let author = context.author
        let type = context.parameters.get("type") ?? ""
        let id = context.parameters.get("id")
        guard FHIRID.isValidType(type) else { return outcome(.badRequest, "invalid", "not a resource type") }
        var body: Data?
        if operation != .delete {
            let contentType = request.headers[.contentType] ?? ""
            guard contentType.isEmpty || contentType.contains("json") else {
                return outcome(.unsupportedMediaType, "not-supported", "send application/fhir+json")
            }
            do {
                body = Data(buffer: try await request.body.collect(upTo: maxBodyBytes))
            } catch {
                return outcome(.contentTooLarge, "too-costly", "the resource is larger than \(maxBodyBytes) bytes")
            }
        }
        do {
            let queued = try handlers.enqueue(
                LocalChange(operation: operation, resourceType: type, id: id, resource: body, author: author))
            handlers.queued()
            logger.info(
                "local change queued",
                metadata: ["entry": "\(queued.seq)", "type": "\(type)", "op": "\(operation.rawValue)"])
            // Who queued what, in the trail. The change is already durable: a trail that
            // cannot be written is logged, the change stands.
            let patients =
                type == "Patient"
                ? [queued.localID] : body.map { PatientAttribution.patients(in: $0, type: type, id: "") } ?? []
            do {
                try await handlers.audit(author, "local-\(operation.rawValue)", patients, "\(type)/\(queued.localID)")
            } catch {
                logger.error("local change not recorded in the audit trail", metadata: ["entry": "\(queued.seq)"])
            }
            var extra = [(LocalAPIServer.entryHeader, "\(queued.seq)")]
            switch operation {
            case .create:
                extra.append(("Location", "/fhir/\(type)/\(queued.localID)"))
                return respond(.created, json: queued.resource ?? Data(), extra: extra)
            case .update:
                return respond(.ok, json: queued.resource ?? Data(), extra: extra)
            case .delete:
                return respond(.noContent, json: nil, extra: extra)
            }
        } catch {
            switch error {
            case .invalid(let reason): return outcome(.badRequest, "invalid", reason)
            case .notFound: return outcome(.notFound, "not-found", error.description)
            case .gone: return outcome(.gone, "deleted", error.description)
            case .noSuchEntry, .wrongState: return outcome(.conflict, "conflict", error.description)
            case .replica(let inner):
                logger.error("local write failed", metadata: ["type": "\(type)", "reason": "\(inner)"])
                return failure(inner, "the change was not saved")
            }
        }
    }

    /// 507 Insufficient Storage when the disk is full (nothing was saved, or the access could
    /// not be recorded so nothing is shown), 500 otherwise; an OperationOutcome either way.
    func failure(_ error: any Error, _ what: String) -> Response {
        if case .diskFull? = error as? ReplicaError {
            return outcome(
                HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "exception",
                "\(what): the practice's disk is full. Nothing was saved or shown; try again once space is freed")
        }
        return outcome(.internalServerError, "exception", "\(what): \(error)")
    }

    func baseURL(_ request: Request) -> String {
        let host = request.head.authority ?? "127.0.0.1"
        return "\(https ? "https" : "http")://\(host)/fhir"
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~:"))) ?? text
    }

    func unauthorized() -> Response {
        var response = outcome(.unauthorized, "login", "a bearer token from the local API credentials is required")
        response.headers[.wwwAuthenticate] = "Bearer realm=\"ehr-sync\""
        return response
    }

    func respond(_ status: HTTPResponse.Status, json: Data?, extra: [(String, String)] = []) -> Response {
        respond(status, body: json.map { ByteBuffer(bytes: $0) }, extra: extra)
    }

    /// A response whose FHIR JSON body is already in a buffer (Bundles are written into one).
    func respond(_ status: HTTPResponse.Status, body: ByteBuffer?, extra: [(String, String)] = []) -> Response {
        var headers = HTTPFields()
        if body != nil { headers[.contentType] = "application/fhir+json; charset=utf-8" }
        headers[.cacheControl] = "no-store"
        if let asOf = handlers.dataAsOf(), let name = HTTPField.Name(LocalAPIServer.freshnessHeader) {
            headers[name] = asOf
        }
        for (name, value) in extra {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(
            status: status, headers: headers, body: body.map { ResponseBody(byteBuffer: $0) } ?? ResponseBody())
    }

    func outcome(_ status: HTTPResponse.Status, _ code: String, _ text: String) -> Response {
        let value: JSONValue = [
            "resourceType": "OperationOutcome",
            "issue": [["severity": "error", "code": .string(code), "diagnostics": .string(text)]],
        ]
        return respond(status, json: value.data())
    }

    /// A truthful CapabilityStatement: the types held locally, the interactions and search
    /// parameters this endpoint answers.
    static func capabilityStatement(types: [String]) -> Data {
        func params(_ names: [(String, String)]) -> JSONValue {
            .array(names.map { ["name": .string($0.0), "type": .string($0.1)] })
        }
        let interactions: JSONValue = .array(
            ["read", "vread", "search-type", "create", "update", "delete"].map { ["code": .string($0)] })
        let patientParams = params([
            ("_id", "token"), ("name", "string"), ("family", "string"), ("given", "string"),
            ("birthdate", "date"), ("identifier", "token"), ("gender", "token"),
        ])
        let clinicalParams = params([
            ("_id", "token"), ("patient", "reference"), ("subject", "reference"), ("date", "date"),
            ("code", "token"), ("status", "token"), ("category", "token"),
        ])
        var resources: [JSONValue] = []
        for type in Set(types + ["Patient"]).sorted() {
            var resource: JSONObject = [
                "type": .string(type), "interaction": interactions, "versioning": "versioned",
                "readHistory": false, "conditionalCreate": false,
                "searchParam": type == "Patient" ? patientParams : clinicalParams,
            ]
            if type == "Patient" {
                resource["operation"] = [
                    [
                        "name": "everything",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    ]
                ]
            }
            resources.append(.object(resource))
        }
        let value: JSONValue = [
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": .string(FHIRInstant.format(Date().timeIntervalSince1970)),
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "software": ["name": "ehr-sync", "version": .string(EHRSync.version)],
            "implementation": [
                "description": "ehr-sync: the practice's local copy of its EHR records; writes are queued for the EHR"
            ],
            "rest": [
                [
                    "mode": "server",
                    "documentation": "Local copy of the practice's records; writes are queued for the EHR.",
                    "resource": .array(resources),
                ]
            ],
        ]
        return value.data()
    }
}
