public import Foundation
import GRDB
public import SyncModel

/// A resource version ready to store: parsed, blinded, hashed and sealed.
///
/// Preparing is pure CPU work with no database access, so callers may prepare on several
/// cores and hand the results to the single writer.
public struct PreparedVersion: Sendable {
    public let envelope: ResourceEnvelope
    let bid: Data
    let patient: Data?
    let hash: Data
    /// The JSON and its ``ResourceOutline``, sealed together.
    let sealed: Data
    package let bytes: Data
    /// The key ring that blinded and sealed it (``KeyRing/generation``): a version prepared
    /// just before a re-key is prepared again by the writer.
    let generation: Data
}

extension ResourceStore {
    /// Parses and seals one resource for ``apply(_:state:)``.
    public func prepare(_ bytes: Data) throws(ResourceError) -> PreparedVersion {
        try prepare(bytes, keys: keys)
    }

    func prepare(_ bytes: Data, keys: KeyRing) throws(ResourceError) -> PreparedVersion {
        let env = try ResourceEnvelope.parse(bytes, sizeLimit: sizeLimit)
        let bid = keys.blind(type: env.resourceType, id: env.id)
        let patient = env.patientID.map { keys.blind(type: "Patient", id: $0) }
        let hash = keys.contentHash(bytes)
        let context = ResourceStore.context(type: env.resourceType, bid: bid, versionId: env.versionId, deleted: false)
        let references: [String]
        do {
            references = try bytes.withUnsafeBytes { raw throws(JSONSlicer.Error) in
                try JSONSlicer.identityAndReferences(ofRaw: raw).references
            }
        } catch {
            throw .notJSON
        }
        let outline = ResourceOutline(id: env.id, references: references)
        let sealed: Data
        do {
            sealed = try keys.seal(outline.appended(to: bytes), context: context)
        } catch {
            // AES-GCM sealing only fails for inputs beyond its 64 GiB limit.
            throw .tooLarge(bytes: bytes.count, limit: sizeLimit)
        }
        return PreparedVersion(
            envelope: env, bid: bid, patient: patient, hash: hash, sealed: sealed, bytes: bytes,
            generation: keys.generation)
    }

    /// Prepares resources on every core (parsing, HMAC and AES-GCM are CPU-bound and
    /// independent); results keep the input order.
    public func prepareConcurrently(_ raw: [Data]) -> [Result<PreparedVersion, ResourceError>] {
        let chunk = 64
        let chunks = (raw.count + chunk - 1) / chunk
        var results = [Result<PreparedVersion, ResourceError>](repeating: .failure(.notJSON), count: raw.count)
        results.withUnsafeMutableBufferPointer { out in
            // Each index is written by exactly one iteration, and read only after all finish.
            nonisolated(unsafe) let base = out.baseAddress!
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for i in (c * chunk)..<min(raw.count, (c + 1) * chunk) {
                    do throws(ResourceError) {
                        (base + i).pointee = .success(try prepare(raw[i]))
                    } catch {
                        (base + i).pointee = .failure(error)
                    }
                }
            }
        }
        return results
    }

    /// Parses, seals and stores raw resources (one JSON resource each, e.g. NDJSON lines);
    /// bad ones are counted in ``ApplyOutcome/rejected`` and skipped.
    @discardableResult
    public func apply(_ raw: [Data], state: [SyncStateKey: String?] = [:]) throws(ReplicaError) -> ApplyOutcome {
        var rejected: [String: Int] = [:]
        var prepared: [PreparedVersion] = []
        prepared.reserveCapacity(raw.count)
        for result in prepareConcurrently(raw) {
            switch result {
            case .success(let p): prepared.append(p)
            case .failure(let error): rejected[error.description, default: 0] += 1
            }
        }
        var outcome = try apply(prepared: prepared, state: state)
        outcome.rejected.merge(rejected, uniquingKeysWith: +)
        return outcome
    }

    /// Stores prepared versions in one transaction, together with sync-state updates (so a
    /// page and the cursor that follows it commit atomically).
    ///
    /// Idempotent: a version already stored is left alone; a version older than the stored
    /// one is held (``UpsertDecision/holdRegression``), never applied.
    @discardableResult
    public func apply(prepared: [PreparedVersion], state: [SyncStateKey: String?] = [:]) throws(ReplicaError)
        -> ApplyOutcome
    {
        let (outcome, patientsChanged) = try write { db in
            let result = try store(prepared, db: db)
            try syncState.write(state, db: db)
            return result
        }
        indexPatients(patientsChanged)
        return outcome
    }

    func indexPatients(_ changed: [PreparedVersion]) {
        if !changed.isEmpty {
            patients.withLock { index in
                for p in changed { index.upsert(bid: p.bid, json: p.bytes) }
            }
        }
    }

    /// Stores prepared versions inside the caller's transaction; returns the outcome and the
    /// Patients to re-index once it commits.
    func store(_ prepared: [PreparedVersion], db: Database) throws -> (ApplyOutcome, [PreparedVersion]) {
        var outcome = ApplyOutcome()
        var patientsChanged: [PreparedVersion] = []
        do {
            let select = try db.cachedStatement(
                sql:
                    "SELECT row, version_id, last_updated, content_hash, deleted FROM resource WHERE type = ? AND bid = ?"
            )
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO resource (type, bid, version_id, last_updated, content_hash, size, deleted, patient, body)
                    VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (type, bid) DO NOTHING
                    """)
            let update = try db.cachedStatement(
                sql: """
                    UPDATE resource SET version_id = ?, last_updated = ?, content_hash = ?, size = ?, deleted = 0,
                    patient = ?, body = ? WHERE row = ?
                    """)
            let keys = self.keys
            for prepared in prepared {
                let p = prepared.generation == keys.generation ? prepared : try prepare(prepared.bytes, keys: keys)
                let env = p.envelope
                // Most rows of a first sync are new: try the insert first, decide only on conflict.
                try insert.execute(arguments: [
                    env.resourceType, p.bid, env.versionId, env.lastUpdated, p.hash, p.bytes.count, p.patient, p.sealed,
                ])
                if db.changesCount == 1 {
                    outcome.inserted += 1
                    if env.resourceType == "Patient" { patientsChanged.append(p) }
                    continue
                }
                let existing = try Row.fetchOne(select, arguments: [env.resourceType, p.bid])
                let stored = existing.map { row in
                    UpsertDecision.Version(
                        versionId: row[1], lastUpdated: row[2], contentHash: Array(row[3] as Data),
                        deleted: (row[4] as Int64) != 0)
                }
                let incoming = UpsertDecision.Version(
                    versionId: env.versionId, lastUpdated: env.lastUpdated, contentHash: Array(p.hash))
                switch UpsertDecision.decide(stored: stored, incoming: incoming) {
                case .insert:
                    try insert.execute(arguments: [
                        env.resourceType, p.bid, env.versionId, env.lastUpdated, p.hash, p.bytes.count, p.patient,
                        p.sealed,
                    ])
                    outcome.inserted += 1
                case .update:
                    try update.execute(arguments: [
                        env.versionId, env.lastUpdated, p.hash, p.bytes.count, p.patient, p.sealed,
                        existing![0] as Int64,
                    ])
                    outcome.updated += 1
                case .unchanged:
                    outcome.unchanged += 1
                    continue
                case .holdRegression:
                    try hold(p, reason: .regression, db: db)
                    outcome.held += 1
                    continue
                }
                if env.resourceType == "Patient" { patientsChanged.append(p) }
            }
        }
        return (outcome, patientsChanged)
    }

    /// What happened to a server deletion.
    public enum DeletionOutcome: Sendable, Equatable {
        case tombstoned
        case alreadyDeleted
        case unknown
        case held
    }

    /// Records a server deletion as a tombstone that keeps the last known content (the base
    /// of a later merge against a local edit) and is hidden from reads.
    @discardableResult
    public func applyDeletion(
        type: String, id: String, versionId: String? = nil, lastUpdated: String? = nil,
        state: [SyncStateKey: String?] = [:]
    ) throws(ReplicaError) -> DeletionOutcome {
        let bid = blind(type: type, id: id)
        let outcome = try tombstone(type: type, bid: bid, versionId: versionId, lastUpdated: lastUpdated)
        if !state.isEmpty { try syncState.set(state) }
        if type == "Patient", outcome == .tombstoned {
            patients.withLock { $0.remove(bid: bid) }
        }
        return outcome
    }

    func hold(_ p: PreparedVersion, reason: HoldReason, db: Database) throws {
        let env = p.envelope
        let context = ResourceStore.heldContext(type: env.resourceType, bid: p.bid, versionId: env.versionId)
        let already =
            try Bool.fetchOne(
                db,
                sql:
                    "SELECT EXISTS (SELECT 1 FROM held_change WHERE type = ? AND bid = ? AND reason = ? AND version_id IS ?)",
                arguments: [env.resourceType, p.bid, reason.rawValue, env.versionId]) ?? false
        if already { return }
        try db.execute(
            sql: """
                INSERT INTO held_change (type, bid, reason, version_id, last_updated, size, body, held_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                env.resourceType, p.bid, reason.rawValue, env.versionId, env.lastUpdated, p.bytes.count,
                try keys.seal(p.bytes, context: context), FHIRInstant.format(Date().timeIntervalSince1970),
            ])
    }

    static func heldContext(type: String, bid: Data, versionId: String?) -> Data {
        var d = Data("h1|\(type)|".utf8)
        d.append(bid)
        d.append(contentsOf: Array("|\(versionId ?? "")".utf8))
        return d
    }
}
