import Foundation
public import Logging
public import SyncModel
public import SyncStore
import Synchronization

/// Replays the outbox to the EHR once it is reachable: in causal order, idempotently, with
/// conflict detection and a FHIR-aware merge.
///
/// - Creates carry a client identifier and go with `If-None-Exist` on it (or are looked up
///   first where the server does not support conditional create), so a create whose
///   response was lost is never duplicated.
/// - Updates go with `If-Match` on their base version; deletes compare the server's version
///   with their base first. A changed remote is merged three-way (``ThreeWayMerge``) under
///   the type's ``ConflictPolicy``; what cannot merge goes to the review queue.
/// - A change the server rejects is parked with its OperationOutcome; changes that depend
///   on it wait, the others go on.
///
/// Entries being sent are "in flight": new local edits of them are chained, not squashed
/// (``enqueue(_:)`` and ``claim(_:)`` share one lock).
public final class Reconciler: Sendable {
    public struct Settings: Sendable {
        public var provenance = true
        public var concurrency = 2
        public var defaultPolicy = ConflictPolicy.merge
        public var policies: [String: ConflictPolicy] = [:]
        /// Names this installation in Provenance records.
        public var device = "ehr-sync"

        public init() {}

        public func policy(for type: String) -> ConflictPolicy { policies[type] ?? defaultPolicy }
    }

    /// Counts of one replay pass.
    public struct PassOutcome: Sendable, Equatable {
        public var done = 0
        public var parked = 0
        public var conflicts = 0
        public var discarded = 0
        public var waiting = 0

        public init() {}
    }

    enum Step: Sendable {
        case done, parked, conflict, discarded, waiting
    }

    let client: any FHIRTransport
    let replica: Replica
    let settings: Settings
    let logger: Logger
    let inFlight = Mutex<Set<Int64>>([])

    public init(transport: any FHIRTransport, replica: Replica, settings: Settings, logger: Logger) {
        self.client = transport
        self.replica = replica
        self.settings = settings
        self.logger = logger
    }

    /// Queues a local change (see ``OutboxStore/enqueue(_:now:isInFlight:)``), never squashing
    /// into an entry being sent.
    public func enqueue(_ change: LocalChange, holdReason: String? = nil) throws(OutboxError) -> QueuedChange {
        do {
            return try inFlight.withLock { flying throws(OutboxError) -> QueuedChange in
                let queued = try replica.outbox.enqueue(change, isInFlight: { flying.contains($0) })
                // Held before the lock is let go: no replay pass can claim it in between.
                if let holdReason {
                    try replica.outbox.hold(seq: queued.seq, reason: holdReason, actor: change.author)
                }
                return queued
            }
        }
    }

    /// Marks an entry in flight and reads its current content; nil when it is no longer
    /// pending.
    func claim(_ seq: Int64) throws(ReplicaError) -> OutboxEntry? {
        try inFlight.withLock { flying throws(ReplicaError) -> OutboxEntry? in
            guard let entry = try replica.outbox.entry(seq: seq), entry.state == .pending else { return nil }
            flying.insert(seq)
            return entry
        }
    }

    func release(_ seq: Int64) {
        _ = inFlight.withLock { $0.remove(seq) }
    }

    /// The plan for the open entries: what is ready and why the rest waits.
    public func plan() throws(ReplicaError) -> (entries: [OutboxEntry], plan: ReplayPlan.Result) {
        let entries = try replica.outbox.entries(states: [.pending, .parked, .conflict])
        let items = entries.map { e in
            ReplayPlan.Item(
                seq: e.seq, state: e.state, operation: e.operation, target: "\(e.resourceType)/\(e.localID)",
                after: e.payload.after, references: e.payload.references)
        }
        let bySeq = Dictionary(uniqueKeysWithValues: entries.map { ($0.seq, $0) })
        var mapped: [String: Bool] = [:]
        for e in entries {
            for reference in e.payload.references where mapped[reference] == nil {
                let parts = reference.split(separator: "/")
                mapped[reference] = (try? replica.outbox.serverID(ofLocal: String(parts[0]), String(parts[1]))) != nil
            }
        }
        // What a create could be sent without: parsed only for the members of a cycle.
        let detachable = { (item: ReplayPlan.Item) -> Set<String> in
            bySeq[item.seq]?.payload.resource.flatMap { try? JSONValue(data: $0) }
                .map(ResourceReferences.inArraysOnly) ?? []
        }
        return (entries, ReplayPlan.plan(items, onServer: { mapped[$0] ?? false }, detachable: detachable))
    }

    /// Replays until nothing more is ready. Throws when the EHR stops answering; what was
    /// done stays done.
    public func replay(conditionalCreate: @escaping @Sendable (String) -> Bool) async throws -> PassOutcome {
        var total = PassOutcome()
        while !Task.isCancelled {
            let (_, plan) = try plan()
            total.waiting = plan.waiting.count
            if plan.ready.isEmpty { break }
            let steps = try await wave(plan.ready, detached: plan.detached, conditionalCreate: conditionalCreate)
            if steps.isEmpty { break }
            var progressed = false
            for step in steps {
                switch step {
                case .done: total.done += 1
                case .parked: total.parked += 1
                case .conflict: total.conflicts += 1
                case .discarded: total.discarded += 1
                case .waiting: continue
                }
                progressed = true
            }
            if !progressed { break }
        }
        return total
    }

    /// Sends ready entries with bounded concurrency; stops at the first unavailability.
    private func wave(
        _ ready: [Int64], detached: [Int64: [String]], conditionalCreate: @escaping @Sendable (String) -> Bool
    ) async throws -> [Step] {
        try await withThrowingTaskGroup(of: Step.self) { group in
            var steps: [Step] = []
            var next = ready.makeIterator()
            var running = 0
            func launch() throws -> Bool {
                while let seq = next.next() {
                    guard let entry = try claim(seq) else { continue }
                    let detach = Set(detached[seq] ?? [])
                    group.addTask {
                        defer { self.release(seq) }
                        return try await self.replayOne(entry, detach: detach, conditionalCreate: conditionalCreate)
                    }
                    return true
                }
                return false
            }
            while running < max(1, settings.concurrency), try launch() { running += 1 }
            while let step = try await group.next() {
                steps.append(step)
                running -= 1
                if try launch() { running += 1 }
            }
            return steps
        }
    }

    // MARK: One entry

    /// Sends one entry; `detach`: references a create is sent without (it breaks a cycle of
    /// creates; an update restoring them is queued with its result).
    func replayOne(_ entry: OutboxEntry, detach: Set<String> = [], conditionalCreate: (String) -> Bool) async throws
        -> Step
    {
        switch entry.operation {
        case .create:
            try await create(entry, detach: detach, conditionalCreate: conditionalCreate(entry.resourceType))
        case .update: try await update(entry)
        case .delete: try await delete(entry)
        }
    }

    /// Local ids of referenced creates mapped to server ids; nil when one is not on the server
    /// yet (those in `except` are not needed).
    func referenceMap(_ entry: OutboxEntry, except: Set<String> = []) throws -> [String: String]? {
        var map: [String: String] = [:]
        for reference in entry.payload.references where !except.contains(reference) {
            let parts = reference.split(separator: "/")
            guard let id = try replica.outbox.serverID(ofLocal: String(parts[0]), String(parts[1])) else { return nil }
            map[reference] = id
        }
        return map
    }

    func localContent(_ entry: OutboxEntry, serverID: String?, detaching: Set<String> = []) throws -> JSONObject? {
        guard let data = entry.payload.resource, case .object(var object) = try JSONValue(data: data) else {
            return nil
        }
        if !detaching.isEmpty, case .object(let detached) = ResourceReferences.detaching(.object(object), detaching) {
            object = detached
        }
        guard let map = try referenceMap(entry, except: detaching) else { return nil }
        if case .object(let rewritten) = ResourceReferences.rewrite(.object(object), map) { object = rewritten }
        object = ResourceEdits.withoutServerMeta(object)
        object["id"] = serverID.map { .string($0) }
        return object
    }

    private func create(_ entry: OutboxEntry, detach: Set<String>, conditionalCreate: Bool) async throws -> Step {
        let type = entry.resourceType
        guard var object = try localContent(entry, serverID: nil, detaching: detach) else { return .waiting }
        if !detach.isEmpty {
            logger.info(
                "create sent without its references into a cycle of local creates; an update restores them",
                metadata: ["entry": "\(entry.seq)", "type": "\(type)", "references": "\(detach.count)"])
        }
        object = ResourceEdits.withClientIdentifier(object, resourceType: type, value: entry.payload.clientIdentifier)
        if !conditionalCreate {
            // The server may ignore If-None-Exist: look the identifier up before (re)sending.
            let query = ResourceEdits.clientIdentifierQuery(
                resourceType: type, value: entry.payload.clientIdentifier, forURL: true)
            let found = try await client.get("\(type)?\(query)")
            if found.status == 200, let existing = BundlePage.firstResource(found.body, type: type) {
                try complete(
                    entry, response: existing, status: 200, headers: [:], deleted: false, restoring: !detach.isEmpty)
                return .done
            }
        }
        let ifNoneExist = ResourceEdits.clientIdentifierQuery(
            resourceType: type, value: entry.payload.clientIdentifier, forURL: false)
        let response = try await client.send(
            "POST", type, headers: [("If-None-Exist", ifNoneExist), ("Prefer", "return=representation")],
            body: JSONValue.object(object).data())
        switch ReplayResponse.classify(response.status) {
        case .written:
            let serverID = try complete(
                entry, response: response.body, status: response.status, headers: response.headers, deleted: false,
                restoring: !detach.isEmpty)
            if response.status == 201 { await provenance(entry, serverID: serverID, headers: response.headers) }
            return .done
        case .stop:
            throw RemoteError.status(route: type, code: response.status)
        default:
            return try park(entry, response)
        }
    }

    private func update(_ entry: OutboxEntry) async throws -> Step {
        let type = entry.resourceType
        guard let serverID = try targetServerID(entry) else { return .waiting }
        guard let local = try localContent(entry, serverID: serverID) else { return .waiting }
        var baseVersion = entry.payload.baseVersion
        if baseVersion == nil, let after = entry.payload.after {
            baseVersion = try replica.outbox.entry(seq: after)?.payload.resultVersion
        }
        if entry.payload.force == true,
            let step = try await write(entry, .object(local), serverID: serverID, ifMatch: nil)
        {
            return step
        }
        guard let version = baseVersion else {
            // No version to make the write conditional: compare with the server's content first.
            return try await reconcileWithRemote(entry, local: .object(local), serverID: serverID)
        }
        let response = try await client.send(
            "PUT", "\(type)/\(serverID)",
            headers: [("If-Match", "W/\"\(version)\""), ("Prefer", "return=representation")],
            body: JSONValue.object(local).data())
        switch ReplayResponse.classify(response.status) {
        case .written:
            try complete(
                entry, response: response.body, status: response.status, headers: response.headers, deleted: false)
            await provenance(entry, serverID: serverID, headers: response.headers)
            return .done
        case .versionChanged, .gone:
            return try await reconcileWithRemote(entry, local: .object(local), serverID: serverID)
        case .rejected:
            return try park(entry, response)
        case .stop:
            throw RemoteError.status(route: type, code: response.status)
        }
    }

    private func delete(_ entry: OutboxEntry) async throws -> Step {
        guard let serverID = try targetServerID(entry) else { return .waiting }
        // Deletes are checked against the server's current version first: not every server
        // honours If-Match on DELETE.
        return try await reconcileWithRemote(entry, local: .null, serverID: serverID)
    }

    func targetServerID(_ entry: OutboxEntry) throws -> String? {
        if let id = entry.payload.serverID { return id }
        return try replica.outbox.serverID(ofLocal: entry.resourceType, entry.localID)
    }

    /// Reads the server's version and decides: already there, write, merge, conflict or
    /// discard, under the type's policy. Loops a few times when the server moves again.
    private func reconcileWithRemote(_ entry: OutboxEntry, local: JSONValue, serverID: String) async throws -> Step {
        let type = entry.resourceType
        let policy = entry.payload.force == true ? .localWins : settings.policy(for: type)
        for _ in 0..<3 {
            let response = try await client.get("\(type)/\(serverID)")
            var remote: JSONValue = .null
            var remoteVersion: String?
            switch response.status {
            case 200:
                guard case .object(let object) = try JSONValue(data: response.body) else {
                    throw RemoteError.badResponse(route: type, reason: "not a resource")
                }
                remoteVersion = object["meta"]?["versionId"]?.stringValue
                remote = .object(object)
            case 404, 410:
                remote = .null
            default:
                if ReplayResponse.classify(response.status) == .rejected { return try park(entry, response) }
                throw RemoteError.status(route: type, code: response.status)
            }
            let base: JSONValue? = try entry.payload.base.map { try JSONValue(data: $0) }
            let answer = response.status == 200 ? response.body : nil
            let step: Step?
            switch RemoteDecision.decide(base: base, local: local, remote: remote, policy: policy) {
            case .alreadyThere:
                // Already on the server (a replay whose answer was lost, the same edit made
                // twice, or a merge that adds nothing).
                try complete(
                    entry, response: answer, status: 200, headers: [:], deleted: remote == .null, serverID: serverID,
                    version: remoteVersion)
                return .done
            case .discard:
                return try discard(entry, reason: "the EHR's version was kept (policy remote-wins for \(type))")
            case .conflict(let conflicts):
                return try conflict(
                    entry, remote: answer, version: remoteVersion, deleted: remote == .null, conflicts: conflicts)
            case .delete:
                step = try await sendDelete(entry, serverID: serverID, version: remoteVersion)
            case .write(let content), .mergeThenWrite(let content):
                var object = content.objectValue ?? JSONObject()
                object["id"] = .string(serverID)
                step = try await write(
                    entry, .object(object), serverID: serverID, ifMatch: remote == .null ? nil : remoteVersion)
            }
            if let step { return step }
            // The server moved again between our read and write: read again.
        }
        throw RemoteError.unavailable(route: type, reason: "the record keeps changing on the EHR; will retry")
    }

    /// PUT; nil when the version moved on again.
    private func write(_ entry: OutboxEntry, _ content: JSONValue, serverID: String, ifMatch: String?) async throws
        -> Step?
    {
        let type = entry.resourceType
        var headers = [("Prefer", "return=representation")]
        if let ifMatch { headers.append(("If-Match", "W/\"\(ifMatch)\"")) }
        let response = try await client.send("PUT", "\(type)/\(serverID)", headers: headers, body: content.data())
        switch ReplayResponse.classify(response.status) {
        case .written:
            try complete(
                entry, response: response.body, status: response.status, headers: response.headers, deleted: false,
                serverID: serverID)
            await provenance(entry, serverID: serverID, headers: response.headers)
            return .done
        case .versionChanged, .gone:
            return nil
        case .rejected:
            return try park(entry, response)
        case .stop:
            throw RemoteError.status(route: type, code: response.status)
        }
    }

    private func sendDelete(_ entry: OutboxEntry, serverID: String, version: String?) async throws -> Step? {
        let type = entry.resourceType
        let headers = version.map { [("If-Match", "W/\"\($0)\"")] } ?? []
        let response = try await client.send("DELETE", "\(type)/\(serverID)", headers: headers, body: nil)
        switch ReplayResponse.classify(response.status) {
        case .written, .gone:
            try complete(
                entry, response: nil, status: response.status, headers: response.headers, deleted: true,
                serverID: serverID)
            await provenance(entry, serverID: serverID, headers: [:])
            return .done
        case .versionChanged:
            return nil
        case .rejected:
            return try park(entry, response)
        case .stop:
            throw RemoteError.status(route: type, code: response.status)
        }
    }

    // MARK: Outcomes

    /// Records success; returns the server id.
    @discardableResult
    func complete(
        _ entry: OutboxEntry, response: Data?, status: Int, headers: [String: String], deleted: Bool,
        serverID knownID: String? = nil, version knownVersion: String? = nil, restoring: Bool = false
    ) throws -> String {
        var prepared: PreparedVersion?
        if let response, !response.isEmpty, let p = try? replica.records.prepare(response),
            p.envelope.resourceType == entry.resourceType
        {
            prepared = p
        }
        let location = headers["location"].flatMap(Self.parseLocation)
        guard let serverID = knownID ?? prepared?.envelope.id ?? location?.id else {
            throw RemoteError.badResponse(route: entry.resourceType, reason: "no id in the answer to a create")
        }
        let version =
            knownVersion ?? prepared?.envelope.versionId ?? location?.version
            ?? headers["etag"].flatMap(Self.parseETag)
        // A create sent detached from a cycle: its full content, under its server id, goes back
        // by an update queued in the same commit.
        var restore: (resource: Data, base: Data?)?
        if restoring, let data = entry.payload.resource, case .object(var full) = try JSONValue(data: data) {
            full["id"] = .string(serverID)
            restore = (JSONValue.object(full).data(), prepared?.bytes)
        }
        try replica.outbox.complete(
            entry, serverID: serverID, resultVersion: version, result: deleted ? nil : prepared, deleted: deleted,
            restore: restore)
        logger.debug(
            "replayed",
            metadata: [
                "entry": "\(entry.seq)", "type": "\(entry.resourceType)", "op": "\(entry.operation.rawValue)",
                "status": "\(status)",
            ])
        return serverID
    }

    func park(_ entry: OutboxEntry, _ response: FHIRResponse) throws -> Step {
        var payload = entry.payload
        payload.attempts += 1
        payload.reason = "HTTP \(response.status): " + OperationOutcomeText.summary(response.body)
        payload.outcome = response.body.isEmpty ? nil : response.body
        try replica.outbox.update(entry, state: .parked, payload: payload)
        logger.warning(
            "change parked: the EHR rejected it",
            metadata: ["entry": "\(entry.seq)", "type": "\(entry.resourceType)", "status": "\(response.status)"])
        return .parked
    }

    func conflict(_ entry: OutboxEntry, remote: Data?, version: String?, deleted: Bool, conflicts: [MergeConflict])
        throws -> Step
    {
        var payload = entry.payload
        payload.remote = remote
        payload.remoteVersion = version
        payload.remoteDeleted = deleted
        payload.conflicts = conflicts
        try replica.outbox.update(entry, state: .conflict, payload: payload)
        logger.warning(
            "conflict: needs review (syncctl conflicts)",
            metadata: ["entry": "\(entry.seq)", "type": "\(entry.resourceType)", "places": "\(conflicts.count)"])
        return .conflict
    }

    func discard(_ entry: OutboxEntry, reason: String) throws -> Step {
        var payload = entry.payload
        payload.reason = reason
        try replica.outbox.update(entry, state: .discarded, payload: payload)
        logger.notice(
            "local change discarded by policy", metadata: ["entry": "\(entry.seq)", "type": "\(entry.resourceType)"])
        return .discarded
    }

    /// Writes the Provenance of a replayed change (best effort: a failure is logged, the
    /// change stays done).
    func provenance(_ entry: OutboxEntry, serverID: String, headers: [String: String]) async {
        guard settings.provenance, entry.resourceType != "Provenance" else { return }
        let version = headers["etag"].flatMap(Self.parseETag)
        let target = "\(entry.resourceType)/\(serverID)" + (version.map { "/_history/\($0)" } ?? "")
        let activity =
            switch entry.operation {
            case .create: "CREATE"
            case .update: "UPDATE"
            case .delete: "DELETE"
            }
        let record = ProvenanceRecord.make(
            target: target, activity: activity, author: entry.payload.authors.description,
            localTime: entry.payload.localTime,
            device: settings.device)
        do {
            let response = try await client.send("POST", "Provenance", body: record.data())
            if !(200..<300).contains(response.status) {
                logger.warning(
                    "provenance not written", metadata: ["entry": "\(entry.seq)", "status": "\(response.status)"])
            }
        } catch {
            logger.warning("provenance not written", metadata: ["entry": "\(entry.seq)", "reason": "\(error)"])
        }
    }

    static func parseETag(_ etag: String) -> String? {
        var s = Substring(etag)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        s = s.drop(while: { $0 == "\"" })
        while s.hasSuffix("\"") { s = s.dropLast() }
        return s.isEmpty ? nil : String(s)
    }

    /// `…/Type/id/_history/version` of a Location header.
    static func parseLocation(_ location: String) -> (id: String, version: String?)? {
        let path = location.split(separator: "?").first.map(String.init) ?? location
        let parts = path.split(separator: "/").map(String.init)
        if let h = parts.lastIndex(of: "_history"), h >= 1, h + 1 < parts.count { return (parts[h - 1], parts[h + 1]) }
        guard parts.count >= 2, FHIRID.isValidType(parts[parts.count - 2]) else { return nil }
        return (parts[parts.count - 1], nil)
    }
}
