import Foundation
import Logging
import SyncModel
import SyncStore

/// The first full copy: Bulk Data `$export` when the server offers it, else paged searches
/// with a stable sort. Resumable: each page or file chunk commits with its resume point.
struct InitialSync: PullEngine {
    let context: PullContext
    let capabilities: ServerCapabilities
    let types: [String]

    typealias State = SyncStateKey

    func run() async throws {
        let started = ContinuousClock.now
        var mode = try replica.syncState.value(State.initialMode)
        if mode == nil {
            mode = chooseMode()
            try replica.syncState.set([State.initialMode: mode])
        }
        context.publish { $0.initialMode = mode }
        logger.info("initial sync", metadata: ["mode": "\(mode ?? "")", "types": "\(types.count)"])
        if mode == "search" {
            try await runSearch()
        } else {
            do {
                try await runExport(group: mode == "export-group")
            } catch BulkExportJob.Unavailable.refused(let status, let reason) {
                logger.warning(
                    "bulk export refused; falling back to paged search",
                    metadata: ["status": "\(status)", "reason": "\(reason)"])
                var state: [SyncStateKey: String?] = [State.initialMode: "search", State.exportStatus: nil]
                if mode == "export-group" { state[State.groupExportRefused] = "HTTP \(status): \(reason)" }
                try replica.syncState.set(state)
                context.publish { $0.initialMode = "search" }
                try await runSearch()
            }
        }
        let elapsed = started.duration(to: .now)
        let count = try replica.records.count()
        let coverage = context.coverage
        if coverage.isPartial {
            logger.error(
                "initial sync finished, but the mirror is PARTIAL: the EHR refuses some types",
                metadata: [
                    "resources": "\(count)", "seconds": "\(elapsed.components.seconds)",
                    "refused": "\(coverage.refused.map(\.type).joined(separator: ","))",
                ])
        } else {
            logger.info(
                "initial sync complete",
                metadata: ["resources": "\(count)", "seconds": "\(elapsed.components.seconds)"])
        }
    }

    /// Whether a type found in an export is kept: configured, or not excluded.
    func accepts(_ type: String) -> Bool {
        if let configured = settings.resourceTypes { return configured.contains(type) }
        return !settings.excludeTypes.contains(type) && context.coverage[type]?.access != .excluded
    }

    func chooseMode() -> String {
        if settings.strategy == .search || settings.strategy == .perPatient { return "search" }
        switch settings.bulkExport {
        case .off: return "search"
        case .system: return "export-system"
        case .group: return "export-group"
        case .auto:
            // A Group configured is the practice asking for it (Epic-style servers export
            // at Group level only, and may not declare it); a refusal falls back.
            if settings.groupID != nil { return "export-group" }
            if capabilities.systemExport { return "export-system" }
            // Asked for by the practice although not declared: tried; a refusal falls back.
            if settings.strategy == .export { return settings.groupID != nil ? "export-group" : "export-system" }
            return "search"
        }
    }

    // MARK: Paged search

    func runSearch() async throws {
        try await copyTypes(types)
        guard let startedAt = try replica.syncState.value(State.initialStartedAt) else {
            throw RemoteError.badResponse(
                route: "search", reason: "the server sent no Date header to start the cursor from")
        }
        try replica.syncState.set([
            State.initialComplete: "1", State.cursor: startedAt, State.lastSweep: startedAt, State.typesTracked: "1",
        ])
    }

    /// Copies every type of `types` not copied yet, each by its own listing: type searches,
    /// or patient by patient for a type whose whole listing the server refuses. A refusal
    /// moves the type to the next way (or marks it refused, with the server's reason); a
    /// type whose pages cannot be read is skipped for this cycle; the others go on either way.
    func copyTypes(_ types: [String]) async throws {
        for type in types {
            let total = try replica.syncState.value(State.initialTotal(type)).flatMap { Int($0) }
            context.publish { $0.setDone(type, done: (try? replica.records.count(type: type)) ?? 0, total: total) }
        }
        var failed: [String] = []
        var perPatient: [String] = []
        for type in types where try replica.syncState.value(State.initialNext(type)) != "done" {
            do {
                if context.coverage[type]?.access == .perPatient {
                    perPatient.append(type)
                    continue
                }
                do {
                    try await searchType(type)
                } catch RemoteError.refused(_, let code, let reason) {
                    let why = "HTTP \(code): \(reason)"
                    guard TypeProbe.patientParameter(type) != nil else {
                        try context.mark(type, .refused, reason: why)
                        continue
                    }
                    try context.mark(type, .perPatient, reason: why)
                    try replica.syncState.set([State.initialNext(type): nil])
                    perPatient.append(type)
                }
            } catch {
                try isolate(type, error, failed: &failed)
            }
        }
        // Types listed patient by patient: `Patient/[id]/$everything` (one listing a patient
        // for all of them) where the server has it, else each type for each patient.
        if !perPatient.isEmpty, try await !copyByEverything(perPatient) {
            for type in perPatient {
                do {
                    try await copyPerPatient(type)
                } catch {
                    try isolate(type, error, failed: &failed)
                }
            }
        }
        if !failed.isEmpty {
            throw RemoteError.badResponse(
                route: "search", reason: "the first copy is partial: " + failed.joined(separator: "; "))
        }
    }

    /// What a type's failed copy means for the rest: unreadable pages skip the type for this
    /// cycle, a refusal marks it refused; anything else (the EHR gone, a full disk) stops the
    /// cycle.
    func isolate(_ type: String, _ error: any Error, failed: inout [String]) throws {
        switch error {
        case let error as PageWalk.Stop:
            logger.error("type not copied this cycle", metadata: ["type": "\(type)", "reason": "\(error)"])
            failed.append("\(type): \(error)")
        case RemoteError.badResponse(let route, let reason):
            logger.error("type not copied this cycle", metadata: ["type": "\(type)", "reason": "\(reason)"])
            failed.append("\(route): \(reason)")
        case RemoteError.refused(_, let code, let reason):
            try context.mark(type, .refused, reason: "HTTP \(code): \(reason)")
        default:
            throw error
        }
    }

    /// The first copy of the per-patient types through `Patient/[id]/$everything`, resumable
    /// after the last patient stored. False (nothing stored) when the server refuses the
    /// operation: it is remembered, and the types are listed one by one.
    func copyByEverything(_ types: [String]) async throws -> Bool {
        if try replica.syncState.value(State.everythingRefused) != nil { return false }
        let wanted = Set(types)
        let resume = try replica.syncState.value(State.initialEverything)
        let patients = context.patientIDs().filter { resume == nil || $0 > resume! }
        var stored = 0
        var refusals = EverythingRefusals(patients: patients.count, resumed: resume != nil)
        var skipped = 0
        patients: for patient in patients {
            let first = TypeProbe.everythingQuery(patientID: patient, extra: "?_count=\(settings.pageSize)")
            var url = first
            var walk = PageWalk(first: first)
            var batch: [PreparedVersion] = []
            while true {
                let page: BundlePage
                do {
                    (_, page) = try await context.fetchPage(url, route: "Patient/$everything")
                } catch RemoteError.refused(_, let code, let reason) where batch.isEmpty {
                    if refusals.refuse() {
                        try rememberEverythingRefused(code: code, reason: reason, more: [State.initialEverything: nil])
                        return false
                    }
                    // One patient gone or restricted: the others go on (the sweep settles it).
                    skipped += 1
                    continue patients
                }
                refusals.answer()
                let resources = page.entries.filter { $0.searchMode == nil || $0.searchMode == "match" }.compactMap(
                    \.resource)
                batch += context.prepare(resources, types: wanted).prepared
                guard let following = try walk.next(after: page.next) else { break }
                url = following
            }
            _ = try replica.records.apply(prepared: batch, state: [State.initialEverything: patient])
            stored += 1
            let fetcher = AttachmentFetcher(context: context)
            try await fetcher.fetch(fetcher.urls(in: batch))
            var perType: [String: Int] = [:]
            for p in batch { perType[p.envelope.resourceType, default: 0] += 1 }
            context.publish { progress in
                for (type, count) in perType { progress.addDone(type, count, total: nil) }
            }
        }
        var done: [SyncStateKey: String?] = [State.initialEverything: nil]
        for type in types { done[State.initialNext(type)] = "done" }
        try replica.syncState.set(done)
        logger.info(
            "types mirrored patient by patient (Patient/$everything)",
            metadata: ["types": "\(types.count)", "patients": "\(patients.count)", "skipped": "\(skipped)"])
        return true
    }

    /// After the first copy: types found since (a new discovery, one seen in `_history`)
    /// get theirs. A replica whose first copy predates per-type tracking counts each type
    /// already holding records as copied.
    func copyNewTypes() async throws {
        let mirrored = context.coverage.mirrored
        if try replica.syncState.value(State.typesTracked) == nil {
            var done: [SyncStateKey: String?] = [State.typesTracked: "1"]
            for type in mirrored where try replica.records.count(type: type) > 0 {
                done[State.initialNext(type)] = "done"
            }
            try replica.syncState.set(done)
        }
        let pending = try mirrored.filter { try replica.syncState.value(State.initialNext($0)) != "done" }
        guard !pending.isEmpty else { return }
        logger.info("types to copy since the first copy", metadata: ["types": "\(pending.joined(separator: ","))"])
        try await copyTypes(pending)
    }

    /// A type's first copy, patient by patient (`Type?patient=`), resumable after the last
    /// patient stored. Patients come first in the mirror order, so their list is known.
    func copyPerPatient(_ type: String) async throws {
        let resume = try replica.syncState.value(State.initialPatient(type))
        let patients = context.patientIDs().filter { resume == nil || $0 > resume! }
        for patient in patients {
            guard let first = TypeProbe.patientQuery(type, patientID: patient, extra: "&_count=\(settings.pageSize)")
            else { break }
            var url = first
            var walk = PageWalk(first: first)
            var batch: [PreparedVersion] = []
            var startedAt: String?
            while true {
                let (response, page) = try await context.fetchPage(url, route: type)
                if startedAt == nil, try replica.syncState.value(State.initialStartedAt) == nil,
                    let serverTime = SyncCursor.serverTime(
                        dateHeader: response.headers["date"], bundleLastUpdated: page.lastUpdated,
                        localNow: Date().timeIntervalSince1970)
                {
                    startedAt = SyncCursor(serverTime: serverTime).text
                }
                let resources = page.entries.filter { $0.searchMode == nil || $0.searchMode == "match" }.compactMap(
                    \.resource)
                batch += context.prepare(resources, types: [type]).prepared
                guard let following = try walk.next(after: page.next) else { break }
                url = following
            }
            var state: [SyncStateKey: String?] = [State.initialPatient(type): patient]
            if let startedAt { state[State.initialStartedAt] = startedAt }
            let outcome = try replica.records.apply(prepared: batch, state: state)
            let fetcher = AttachmentFetcher(context: context)
            try await fetcher.fetch(fetcher.urls(in: batch))
            context.publish { $0.addDone(type, outcome.inserted, total: nil) }
        }
        try replica.syncState.set([State.initialNext(type): "done", State.initialPatient(type): nil])
        let count = try replica.records.count(type: type)
        logger.info(
            "type mirrored patient by patient",
            metadata: ["type": "\(type)", "resources": "\(count)", "patients": "\(patients.count)"])
    }

    func searchType(_ type: String) async throws {
        let key = State.initialNext(type)
        var next = try replica.syncState.value(key)
        if next == "done" { return }
        var url = next ?? "\(type)?_sort=_id&_count=\(settings.pageSize)"
        var walk = PageWalk(first: url)
        var pages = 0
        while true {
            let (response, page) = try await context.fetchPage(url, route: type)
            var state: [SyncStateKey: String?] = [:]
            next = page.next
            state[key] = next ?? "done"
            if try replica.syncState.value(State.initialStartedAt) == nil,
                let serverTime = SyncCursor.serverTime(
                    dateHeader: response.headers["date"], bundleLastUpdated: page.lastUpdated,
                    localNow: Date().timeIntervalSince1970)
            {
                state[State.initialStartedAt] = SyncCursor(serverTime: serverTime).text
            }
            if let total = page.total { state[State.initialTotal(type)] = String(total) }
            let resources = page.entries.filter { $0.searchMode == nil || $0.searchMode == "match" }.compactMap(
                \.resource)
            let (prepared, _) = context.prepare(resources, types: [type])
            let outcome = try replica.records.apply(prepared: prepared, state: state)
            let fetcher = AttachmentFetcher(context: context)
            try await fetcher.fetch(fetcher.urls(in: prepared))
            pages += 1
            context.publish { $0.addDone(type, outcome.inserted, total: page.total) }
            let done = context.progress.current.done(type)
            if pages % 20 == 0 {
                logger.info(
                    "initial sync progress",
                    metadata: ["type": "\(type)", "done": "\(done)", "total": "\(page.total.map(String.init) ?? "?")"])
            }
            guard let following = try walk.next(after: next) else { break }
            url = following
        }
        let count = try replica.records.count(type: type)
        logger.info("type mirrored", metadata: ["type": "\(type)", "resources": "\(count)", "pages": "\(pages)"])
    }

    // MARK: Bulk export

    typealias Manifest = BulkExportJob.Manifest

    func runExport(group: Bool) async throws {
        let job = BulkExportJob(context: context)
        var manifestText = try replica.syncState.value(State.exportManifest)
        while manifestText == nil {
            var statusURL = try replica.syncState.value(State.exportStatus)
            if statusURL == nil {
                statusURL = try await kickOff(group: group)
            }
            manifestText = try await job.poll(statusURL!)
            try replica.syncState.set(
                manifestText == nil ? [State.exportStatus: nil] : [State.exportManifest: manifestText])
        }
        guard let manifest = Manifest.decode(manifestText!) else {
            try replica.syncState.set([State.exportManifest: nil, State.exportStatus: nil])
            throw RemoteError.badResponse(route: "$export", reason: "the export manifest is not valid")
        }
        // An export asked without `_type` keeps whatever types it returns (but those excluded).
        // A type name is checked before it becomes a sync_state key or a coverage entry.
        let wanted = Set(manifest.output.map(\.type)).filter { FHIRID.isValidType($0) && accepts($0) }
        var perType: [String: Int] = [:]
        for output in manifest.output where wanted.contains(output.type) {
            perType[output.type, default: 0] += output.count ?? 0
        }
        for type in wanted.sorted() where !context.coverage.mirrored.contains(type) {
            try context.mark(type, .search)
        }
        for type in wanted.sorted() {
            let done = try replica.records.count(type: type)
            context.publish { $0.setDone(type, done: done, total: perType[type]) }
        }
        try job.checkOrigins(manifest.output.filter { wanted.contains($0.type) })
        for (index, output) in manifest.output.enumerated() where wanted.contains(output.type) {
            try await importFile(
                index: index, output: output, sendCredentials: manifest.requiresAccessToken ?? true,
                total: perType[output.type])
        }
        guard let cursor = SyncCursor(manifest.transactionTime) else {
            throw RemoteError.badResponse(route: "$export", reason: "transactionTime is not an instant")
        }
        if let statusURL = try replica.syncState.value(State.exportStatus) { await job.release(statusURL) }
        try replica.syncState.set(Dictionary(uniqueKeysWithValues: wanted.map { (State.initialNext($0), "done") }))
        // What the export left out (a served type it does not cover) is listed by search.
        try await copyTypes(context.coverage.mirrored)
        try replica.syncState.set([
            // A complete export is a full listing: it counts as a sweep.
            State.initialComplete: "1", State.cursor: cursor.text, State.lastSweep: cursor.text,
            State.exportStatus: nil, State.typesTracked: "1",
        ])
    }

    func kickOff(group: Bool) async throws -> String {
        let path = BulkExportJob.path(
            group: group ? settings.groupID ?? "" : nil, since: nil, types: settings.resourceTypes)
        let (location, date) = try await BulkExportJob(context: context).kickOff(path)
        var state: [SyncStateKey: String?] = [State.exportStatus: location]
        if let date {
            // Never past this machine's clock (a Date header ahead would skip changes).
            state[State.initialStartedAt] = SyncCursor(serverTime: min(date, Date().timeIntervalSince1970)).text
        }
        try replica.syncState.set(state)
        logger.info("bulk export started", metadata: ["level": "\(group ? "group" : "system")"])
        return location
    }

    func importFile(index: Int, output: Manifest.Output, sendCredentials: Bool, total: Int?) async throws {
        let key = State.exportFile(index)
        var attempt = 0
        while true {
            let state = try replica.syncState.value(key)
            if state == "done" { return }
            let committed = state.flatMap { Int($0) } ?? 0
            var seen = 0
            do {
                _ = try await client.streamLines(
                    output.url, sendCredentials: sendCredentials, maxLineBytes: settings.maxResourceBytes,
                    batchSize: 500
                ) { batch in
                    let skip = max(0, min(committed - seen, batch.count))
                    seen += batch.count
                    if skip == batch.count { return }
                    let (prepared, _) = context.prepare(Array(batch.dropFirst(skip)), types: [output.type])
                    let outcome = try replica.records.apply(prepared: prepared, state: [key: String(seen)])
                    let fetcher = AttachmentFetcher(context: context)
                    try await fetcher.fetch(fetcher.urls(in: prepared))
                    context.publish { $0.addDone(output.type, outcome.inserted, total: total) }
                }
                try replica.syncState.set([key: "done"])
                logger.info("export file imported", metadata: ["type": "\(output.type)", "lines": "\(seen)"])
                return
            } catch let error as RemoteError where error == .cancelled {
                throw error
            } catch let error as RemoteError {
                if case .status(_, let code) = error, code < 500, code != 429 { throw error }
                attempt += 1
                try await retryWait(attempt: attempt, error: error)
            } catch let error as ReplicaError {
                throw error
            } catch {
                if Task.isCancelled { throw RemoteError.cancelled }
                attempt += 1
                try await retryWait(attempt: attempt, error: error)
            }
        }
    }

    func retryWait(attempt: Int, error: any Error) async throws {
        guard
            let delay = settings.resumeBackoff.delay(attempt: attempt, retryAfter: nil, unit: Double.random(in: 0..<1))
        else {
            throw RemoteError.unavailable(route: "$export file", reason: "\(error)")
        }
        logger.info(
            "export file interrupted; resuming",
            metadata: ["attempt": "\(attempt)", "wait_s": "\(String(format: "%.2f", delay))"])
        try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
    }
}
