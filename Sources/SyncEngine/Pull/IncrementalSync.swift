import Foundation
import Logging
import SyncModel
import SyncStore

/// One incremental cycle: changes since the server-time cursor (minus an overlap), from
/// system `_history` when offered (it carries deletions), else the practice's Group export
/// with `_since` where configured, `_lastUpdated` searches, or per-patient listings;
/// then a sweep when due, which lists every id to find deletions and server rollbacks.
struct IncrementalSync: PullEngine {
    let context: PullContext
    let capabilities: ServerCapabilities

    typealias State = SyncStateKey

    /// The newest change seen for one resource in this cycle.
    enum Change {
        case upsert(PreparedVersion)
        case delete(type: String, id: String, version: String?)
    }

    /// What one cycle's listings found.
    struct Listing {
        var changes = NewestChanges<Change>()
        /// Server time at the first answer: the next cursor.
        var cycleStart: Double?
    }

    /// Whether a type met in a listing is kept: configured, or not excluded.
    func accepts(_ type: String) -> Bool {
        if let configured = settings.resourceTypes { return configured.contains(type) }
        return !settings.excludeTypes.contains(type) && context.coverage[type]?.access != .excluded
    }

    func run() async throws {
        guard let cursorText = try replica.syncState.value(State.cursor), let cursor = SyncCursor(cursorText) else {
            throw RemoteError.badResponse(
                route: "_history", reason: "no sync cursor; the initial sync has not completed")
        }
        let since = cursor.since(overlap: settings.overlap)
        var listing = Listing()

        // System `_history` when the server has it (one request when idle; it carries
        // deletions); a server that declares it but refuses it is remembered.
        let historyRefused = try replica.syncState.value(State.historyRefused)
        // `[sync] strategy = "search"` or `"per-patient"` asks for those listings instead.
        let historyWanted = settings.strategy == .auto || settings.strategy == .export
        var useHistory = capabilities.systemHistory && historyRefused == nil && historyWanted
        if useHistory {
            do {
                try await walk(
                    "_history?_since=\(since)&_count=\(settings.pageSize)", route: "_history", since: since,
                    history: true, into: &listing)
            } catch RemoteError.refused(_, let code, let reason) {
                logger.warning(
                    "the EHR declares _history but refuses it; listing changes type by type",
                    metadata: ["status": "\(code)", "reason": "\(reason)"])
                try replica.syncState.set([State.historyRefused: "HTTP \(code): \(reason)"])
                listing = Listing()
                useHistory = false
            }
        }
        var round: PatientRound.Plan?
        if !useHistory {
            // The practice's Group export with `_since` where configured: one job for every
            // patient's records; what it does not cover is listed as below.
            var covered: Set<String> = []
            if try groupExportWanted() {
                covered = try await listByGroupExport(since: since, into: &listing) ?? []
            }
            let perPatient = context.coverage.perPatient.filter { !covered.contains($0) }
            for type in context.coverage.mirrored where !perPatient.contains(type) && !covered.contains(type) {
                try await listChanges(of: type, since: since, into: &listing)
            }
            if !perPatient.isEmpty {
                // Per-patient listings cost requests a patient: those that matter now every
                // cycle, everyone on a slower round, all from the last round's start.
                let plan = try patientPlan(cursor: cursor)
                round = plan
                let from = SyncCursor(plan.since)?.since(overlap: settings.overlap) ?? since
                if try await !listByEverything(perPatient, patients: plan.patients, since: from, into: &listing) {
                    for type in perPatient {
                        try await listChanges(of: type, since: from, patients: plan.patients, into: &listing)
                    }
                }
            }
        }
        let cycleStart = listing.cycleStart
        let changes = listing.changes

        // Upserts first, in batches; then deletions through the mass-delete guard.
        var upserts: [PreparedVersion] = []
        var deletions: [(type: String, id: String, version: String?)] = []
        for change in changes.inOrder {
            switch change {
            case .upsert(let p): upserts.append(p)
            case .delete(let type, let id, let version): deletions.append((type, id, version))
            }
        }
        var outcome = ApplyOutcome()
        var start = 0
        while start < upserts.count {
            let end = min(start + 500, upserts.count)
            outcome += try replica.records.apply(prepared: Array(upserts[start..<end]))
            start = end
        }
        let fetcher = AttachmentFetcher(context: context)
        try await fetcher.fetch(fetcher.urls(in: upserts))
        if outcome.held > 0 {
            logger.warning(
                "server sent versions older than the replica's; held for review", metadata: ["count": "\(outcome.held)"]
            )
        }

        let dueSweep = try sweepDue(serverNow: cycleStart)
        var sweep = SweepResult()
        if dueSweep { sweep = try await self.sweep() }

        let totalDeletions = deletions.count + sweep.missing.count
        let live = try replica.records.count()
        let verdict = DeletionVerdict.decide(
            deletions: totalDeletions, regressions: sweep.regressions + outcome.held, liveRecords: live,
            guard: settings.massDelete)
        switch verdict {
        case .hold(let reason):
            try replica.held.holdDeletions(deletions.map { ($0.type, $0.id) }, missing: sweep.missing, reason: reason)
            if reason == .regression {
                logger.warning(
                    "server rollback suspected; its deletions are held", metadata: ["deletions": "\(totalDeletions)"])
            } else {
                logger.warning(
                    "mass deletion held for an operator",
                    metadata: [
                        "deletions": "\(totalDeletions)",
                        "limit": "\(settings.massDelete.limit(replicaSize: live))",
                    ])
            }
        case .apply:
            for d in deletions {
                try replica.records.applyDeletion(type: d.type, id: d.id, versionId: d.version)
            }
            try replica.records.applyDeletions(sweep.missing)
        }

        var state: [SyncStateKey: String?] = [:]
        if let cycleStart {
            state[State.cursor] = SyncCursor(serverTime: cycleStart).text
            if dueSweep { state[State.lastSweep] = SyncCursor(serverTime: cycleStart).text }
            if let round {
                let at = SyncCursor(serverTime: cycleStart).text
                context.listedAt.record(round.patients, at: at)
            }
            if round?.isRound == true {
                let done = PatientRound.State(
                    since: SyncCursor(serverTime: cycleStart).text, at: Date().timeIntervalSince1970)
                state[State.patientRound] = String(decoding: try JSONEncoder().encode(done), as: UTF8.self)
            }
        }
        try replica.syncState.set(state)
        logger.info(
            "incremental cycle",
            metadata: [
                "inserted": "\(outcome.inserted)", "updated": "\(outcome.updated)", "deleted": "\(totalDeletions)",
                "held": "\(outcome.held + sweep.regressions)", "swept": "\(dueSweep)",
            ])
    }

    /// A type's changes since the cursor: one `_lastUpdated` search, or one a patient for a
    /// type listed patient by patient. A refusal moves the type to the next way, or marks
    /// it refused; the other types go on.
    /// Which patients per-patient listings ask this cycle, and from when.
    func patientPlan(cursor: SyncCursor) throws -> PatientRound.Plan {
        let last = try replica.syncState.value(State.patientRound).flatMap {
            try? JSONDecoder().decode(PatientRound.State.self, from: Data($0.utf8))
        }
        var matter = context.recent.current()
        if context.coverage.mirrored.contains("Appointment") {
            let now = Date()
            let format = DateFormatter()
            format.locale = Locale(identifier: "en_US_POSIX")
            format.dateFormat = "yyyy-MM-dd"
            let days: Set<String> = [format.string(from: now), format.string(from: now.addingTimeInterval(86_400))]
            try replica.records.forEachResource(type: "Appointment") { stored in
                matter.formUnion(PatientRound.scheduledPatients(appointment: stored.json, days: days))
            }
        }
        return PatientRound.plan(
            patients: context.patientIDs(), matter: matter, cursor: cursor.text, last: last,
            now: Date().timeIntervalSince1970, interval: settings.patientRound)
    }

    func listChanges(
        of type: String, since: String, patients: [String]? = nil, into listing: inout Listing
    ) async throws {
        let changed = "&_lastUpdated=ge\(since)&_sort=_lastUpdated&_count=\(settings.pageSize)"
        let whole = "&_sort=_id&_count=\(settings.pageSize)"
        var extra = context.coverage[type]?.withoutLastUpdated == true ? whole : changed
        do {
            if context.coverage[type]?.access != .perPatient {
                do {
                    try await walkOrRelist(
                        type, query: "\(type)?", extra: &extra, whole: whole, since: since, into: &listing)
                    return
                } catch RemoteError.refused(_, let code, let reason) {
                    guard TypeProbe.patientParameter(type) != nil else {
                        throw RemoteError.refused(route: type, code: code, reason: reason)
                    }
                    try context.mark(type, .perPatient, reason: "HTTP \(code): \(reason)")
                }
            }
            for patient in patients ?? context.patientIDs() {
                guard let query = TypeProbe.patientQuery(type, patientID: patient) else { return }
                try await walkOrRelist(type, query: query, extra: &extra, whole: whole, since: since, into: &listing)
            }
        } catch RemoteError.refused(_, let code, let reason) {
            try context.mark(type, .refused, reason: "HTTP \(code): \(reason)")
        }
    }

    /// The per-patient types' changes through `Patient/[id]/$everything?_since=`: one listing a
    /// patient for all of them. False when the server refuses the operation (remembered).
    func listByEverything(_ types: [String], patients: [String], since: String, into listing: inout Listing)
        async throws -> Bool
    {
        if try replica.syncState.value(State.everythingRefused) != nil { return false }
        let wanted = Set(types)
        var refusals = EverythingRefusals(patients: patients.count)
        for patient in patients {
            let first = TypeProbe.everythingQuery(
                patientID: patient, extra: "?_since=\(since)&_count=\(settings.pageSize)")
            do {
                try await walk(
                    first, route: "Patient/$everything", since: since, history: false, only: wanted, into: &listing)
                refusals.answer()
            } catch RemoteError.refused(_, let code, let reason) {
                if refusals.refuse() {
                    try rememberEverythingRefused(code: code, reason: reason)
                    return false
                }
                // One patient gone or restricted: the others go on (the sweep settles it).
                logger.warning(
                    "the EHR refused one patient's Patient/$everything; the others go on",
                    metadata: ["status": "\(code)"])
            }
        }
        return true
    }

    /// One listing of changes; when the server refuses `_lastUpdated` on the type (and only
    /// then), the listing is made whole instead and the type remembered as such.
    func walkOrRelist(
        _ type: String, query: String, extra: inout String, whole: String, since: String, into listing: inout Listing
    ) async throws {
        let separator = query.hasSuffix("?") ? "" : "&"
        do {
            try await walk(
                query + separator + extra.dropFirst(), route: type, since: since, history: false, into: &listing)
        } catch RemoteError.refused(_, let code, let reason) where extra != whole {
            try await walk(
                query + separator + whole.dropFirst(), route: type, since: since, history: false, into: &listing)
            // The whole listing worked: it was `_lastUpdated` the server refused.
            try context.markWithoutLastUpdated(type, reason: "HTTP \(code): \(reason)")
            extra = whole
        }
    }

    /// Follows one listing's pages, keeping the newest change of each resource.
    func walk(
        _ first: String, route: String, since: String, history: Bool, only: Set<String>? = nil,
        into listing: inout Listing
    ) async throws {
        var url: String? = first
        var walk = PageWalk(first: first)
        while let current = url {
            let (response, page) = try await context.fetchPage(current, route: route)
            if listing.cycleStart == nil {
                let now = Date().timeIntervalSince1970
                if let skew = SyncCursor.clockSkew(dateHeader: response.headers["date"], localNow: now) {
                    logger.warning(
                        "the EHR's clock and this machine's disagree; the cursor keeps to the earlier of the two",
                        metadata: ["skew_s": "\(Int(skew))"])
                }
                listing.cycleStart = SyncCursor.serverTime(
                    dateHeader: response.headers["date"], bundleLastUpdated: page.lastUpdated, localNow: now)
            }
            var resources: [Data] = []
            for entry in page.entries {
                if let ref = entry.deletedReference {
                    if accepts(ref.type), only?.contains(ref.type) ?? true {
                        listing.changes.record(
                            ref.string, version: entry.deletedVersion,
                            .delete(type: ref.type, id: ref.id, version: entry.deletedVersion))
                    }
                } else if let resource = entry.resource, entry.searchMode == nil || entry.searchMode == "match" {
                    resources.append(resource)
                }
            }
            for p in context.prepare(resources, types: only).prepared where accepts(p.envelope.resourceType) {
                let type = p.envelope.resourceType
                if history, context.coverage[type].map({ $0.access == .search || $0.access == .perPatient }) != true {
                    // Served after all (seen in `_history`): mirrored from now on, its first
                    // copy made next cycle.
                    try context.mark(type, .search)
                }
                listing.changes.record("\(type)/\(p.envelope.id)", version: p.envelope.versionId, .upsert(p))
            }
            url = try walk.next(after: page.next.map { Self.keepSince($0, since: since, isHistory: history) })
        }
    }

    /// Some servers drop `_since` from history next links; put it back.
    static func keepSince(_ next: String, since: String, isHistory: Bool) -> String {
        guard isHistory, !next.contains("_since=") else { return next }
        return next + (next.contains("?") ? "&" : "?") + "_since=" + since
    }

    /// On the practice's own grid (``SweepSchedule``): a fleet's sweeps spread over the
    /// interval, and none owed at the moment everyone comes back from an outage.
    func sweepDue(serverNow: Double?) throws -> Bool {
        guard let last = try replica.syncState.value(State.lastSweep).flatMap(SyncCursor.init) else { return true }
        guard let now = serverNow else { return false }
        let notBefore = try replica.syncState.value(State.sweepNotBefore).flatMap(SyncCursor.init)?.serverTime
        return SweepSchedule.isDue(
            lastSweep: last.serverTime, now: now, interval: settings.sweepInterval,
            phase: SweepSchedule.phase(of: try replica.audit.witnessName()), notBefore: notBefore)
    }

    struct SweepResult {
        var missing: [MissingResource] = []
        var regressions = 0
    }

    /// Lists every id of every mirrored type (with versions where the server gives them):
    /// what the replica has and the server does not is a deletion; a server version older
    /// than the replica's is a rollback, held.
    func sweep() async throws -> SweepResult {
        var result = SweepResult()
        let perPatient = context.coverage.perPatient
        // Per-patient types in one `$everything` a patient where the server has it.
        var everything: [String: Set<String>]?
        if !perPatient.isEmpty, try replica.syncState.value(State.everythingRefused) == nil {
            everything = try await idsByEverything(Set(perPatient))
        }
        for type in context.coverage.mirrored {
            var ids = Set<String>()
            var older: [String] = []
            var listings: [String] = []
            if let found = everything, perPatient.contains(type) {
                ids = found[type] ?? []
                older = try ids.filter { try isOlder(type: type, id: $0, serverVersion: nil) }
            } else if perPatient.contains(type) {
                listings = context.patientIDs().compactMap {
                    TypeProbe.patientQuery(type, patientID: $0, extra: "&_elements=id&_count=\(settings.pageSize)")
                }
            } else {
                listings = ["\(type)?_elements=id&_sort=_id&_count=\(max(settings.pageSize, 1000))"]
            }
            do {
                for first in listings {
                    var url: String? = first
                    var walk = PageWalk(first: first)
                    while let current = url {
                        let (_, page) = try await context.fetchPage(current, route: type)
                        for entry in page.entries {
                            guard let bytes = entry.resource, let env = try? ResourceEnvelope.parse(bytes),
                                env.resourceType == type
                            else { continue }
                            ids.insert(env.id)
                            if try isOlder(type: type, id: env.id, serverVersion: env.versionId) {
                                older.append(env.id)
                            }
                        }
                        url = try walk.next(after: page.next)
                    }
                }
            } catch RemoteError.refused(_, let code, let reason) {
                // No full listing, no deletions inferred from it: the type is left as it is.
                logger.warning(
                    "sweep skipped a type the EHR would not list",
                    metadata: ["type": "\(type)", "status": "\(code)", "reason": "\(reason)"])
                continue
            }
            for id in older {
                let response = try await client.get("\(type)/\(id)")
                guard response.status == 200 else { continue }
                let prepared = context.prepare([response.body], types: [type]).prepared
                for p in prepared { try replica.held.holdRegression(p) }
                result.regressions += prepared.count
            }
            result.missing += try replica.records.missing(type: type, serverIDs: ids)
        }
        if result.regressions > 0 {
            logger.warning(
                "server rollback: versions older than the replica's", metadata: ["count": "\(result.regressions)"])
        }
        return result
    }

    /// Whether the server's version of a record is older than the replica's (a rollback).
    /// `serverVersion` nil: known from the ids' listing only, never older.
    func isOlder(type: String, id: String, serverVersion: String?) throws -> Bool {
        guard let serverVersion = serverVersion.flatMap({ Int($0) }),
            let stored = try replica.records.storedVersion(type: type, id: id), !stored.deleted,
            let storedVersion = stored.versionId.flatMap({ Int($0) })
        else { return false }
        return serverVersion < storedVersion
    }

    /// Every id of the per-patient types, from each patient's `$everything`; nil when the
    /// server refuses it or one patient's listing fails (no deletions inferred).
    func idsByEverything(_ types: Set<String>) async throws -> [String: Set<String>]? {
        var ids: [String: Set<String>] = [:]
        for patient in context.patientIDs() {
            let first = TypeProbe.everythingQuery(patientID: patient, extra: "?_count=\(settings.pageSize)")
            var url: String? = first
            var walk = PageWalk(first: first)
            do {
                while let current = url {
                    let (_, page) = try await context.fetchPage(current, route: "Patient/$everything")
                    for entry in page.entries {
                        guard let bytes = entry.resource, let env = try? ResourceEnvelope.parse(bytes),
                            types.contains(env.resourceType)
                        else { continue }
                        ids[env.resourceType, default: []].insert(env.id)
                    }
                    url = try walk.next(after: page.next)
                }
            } catch RemoteError.refused {
                // One patient's refusal (gone, restricted) or the operation's: no deletions
                // inferred from this listing; the type-by-type listings sweep instead. Whether
                // the operation is unsupported is the cycle's listing's to conclude.
                return nil
            }
        }
        return ids
    }
}
