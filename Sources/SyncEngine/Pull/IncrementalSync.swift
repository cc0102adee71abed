import Foundation
import Logging
import SyncModel
import SyncStore

/// One incremental cycle: changes since the server-time cursor (minus an overlap), from
/// system `_history` when offered (it carries deletions), else `_lastUpdated` searches;
/// then a sweep when due, which lists every id to find deletions and server rollbacks.
struct IncrementalSync: PullEngine {
    let context: PullContext
    let capabilities: ServerCapabilities
    let types: [String]

    typealias State = SyncStateKey

    /// The newest change seen for one resource in this cycle.
    enum Change {
        case upsert(PreparedVersion)
        case delete(type: String, id: String, version: String?)
    }

    func run() async throws {
        guard let cursorText = try replica.syncState.value(State.cursor), let cursor = SyncCursor(cursorText) else {
            throw RemoteError.badResponse(
                route: "_history", reason: "no sync cursor; the initial sync has not completed")
        }
        let since = cursor.since(overlap: settings.overlap)
        let wanted = Set(types)
        var changes = NewestChanges<Change>()
        var cycleStart: Double?

        let urls: [(String, String)] =
            capabilities.systemHistory
            ? [("_history", "_history?_since=\(since)&_count=\(settings.pageSize)")]
            : types.map { ($0, "\($0)?_lastUpdated=ge\(since)&_sort=_lastUpdated&_count=\(settings.pageSize)") }
        for (route, first) in urls {
            var url: String? = first
            var walk = PageWalk(first: first)
            while let current = url {
                let (response, page) = try await context.fetchPage(current, route: route)
                if cycleStart == nil {
                    let now = Date().timeIntervalSince1970
                    if let skew = SyncCursor.clockSkew(dateHeader: response.headers["date"], localNow: now) {
                        logger.warning(
                            "the EHR's clock and this machine's disagree; the cursor keeps to the earlier of the two",
                            metadata: ["skew_s": "\(Int(skew))"])
                    }
                    cycleStart = SyncCursor.serverTime(
                        dateHeader: response.headers["date"], bundleLastUpdated: page.lastUpdated, localNow: now)
                }
                var resources: [Data] = []
                for entry in page.entries {
                    if let ref = entry.deletedReference {
                        if wanted.contains(ref.type) {
                            changes.record(
                                ref.string, version: entry.deletedVersion,
                                .delete(type: ref.type, id: ref.id, version: entry.deletedVersion))
                        }
                    } else if let resource = entry.resource, entry.searchMode == nil || entry.searchMode == "match" {
                        resources.append(resource)
                    }
                }
                for p in context.prepare(resources, types: wanted).prepared {
                    changes.record(
                        "\(p.envelope.resourceType)/\(p.envelope.id)", version: p.envelope.versionId, .upsert(p))
                }
                url = try walk.next(
                    after: page.next.map { Self.keepSince($0, since: since, isHistory: capabilities.systemHistory) })
            }
        }

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
        }
        try replica.syncState.set(state)
        logger.info(
            "incremental cycle",
            metadata: [
                "inserted": "\(outcome.inserted)", "updated": "\(outcome.updated)", "deleted": "\(totalDeletions)",
                "held": "\(outcome.held + sweep.regressions)", "swept": "\(dueSweep)",
            ])
    }

    /// Some servers drop `_since` from history next links; put it back.
    static func keepSince(_ next: String, since: String, isHistory: Bool) -> String {
        guard isHistory, !next.contains("_since=") else { return next }
        return next + (next.contains("?") ? "&" : "?") + "_since=" + since
    }

    func sweepDue(serverNow: Double?) throws -> Bool {
        guard let last = try replica.syncState.value(State.lastSweep).flatMap(SyncCursor.init) else { return true }
        guard let now = serverNow else { return false }
        return now - last.serverTime >= settings.sweepInterval
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
        for type in types {
            var ids = Set<String>()
            var older: [String] = []
            var url: String? = "\(type)?_elements=id&_sort=_id&_count=\(max(settings.pageSize, 1000))"
            var walk = PageWalk(first: url!)
            while let current = url {
                let (_, page) = try await context.fetchPage(current, route: type)
                for entry in page.entries {
                    guard let bytes = entry.resource, let env = try? ResourceEnvelope.parse(bytes),
                        env.resourceType == type
                    else { continue }
                    ids.insert(env.id)
                    if let serverVersion = env.versionId.flatMap({ Int($0) }),
                        let stored = try replica.records.storedVersion(type: type, id: env.id), !stored.deleted,
                        let storedVersion = stored.versionId.flatMap({ Int($0) }), serverVersion < storedVersion
                    {
                        older.append(env.id)
                    }
                }
                url = try walk.next(after: page.next)
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
}
