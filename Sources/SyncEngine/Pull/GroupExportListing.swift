import Foundation
import Logging
import SyncModel
import SyncStore

/// Incremental cycles through the practice's Group `$export` with `_since` (Epic-style
/// servers: no `_history`, clinical searches one patient at a time, Bulk Data at Group level).
/// One job lists the changes of every patient of the Group; its manifest's `transactionTime`
/// (the server's, never this machine's clock) is the next cursor; its `deleted` files, where
/// the server gives them, are deletions (else the sweep finds them).
extension IncrementalSync {
    /// Whether this cycle asks the Group export: a Group is configured, exports are not turned
    /// off, the strategy allows it, and the server has not refused it before.
    func groupExportWanted() throws -> Bool {
        guard settings.groupID != nil, settings.bulkExport != .off, settings.bulkExport != .system,
            settings.strategy == .auto || settings.strategy == .export
        else { return false }
        return try replica.syncState.value(State.groupExportRefused) == nil
    }

    /// Lists the Group's changes since `since`; the types the export covers (the Patient
    /// compartment's and those it returned), or nil when the server refuses it (remembered:
    /// later cycles list type by type).
    func listByGroupExport(since: String, into listing: inout Listing) async throws -> Set<String>? {
        let job = BulkExportJob(context: context)
        let path = BulkExportJob.path(group: settings.groupID, since: since, types: settings.resourceTypes)
        var manifestText: String?
        var statusURL = ""
        var jobs = 0
        while manifestText == nil {
            jobs += 1
            guard jobs <= 3 else {
                throw RemoteError.unavailable(route: "$export", reason: "export jobs keep expiring before they finish")
            }
            let location: String
            do {
                (location, _) = try await job.kickOff(path)
            } catch BulkExportJob.Unavailable.refused(let status, let reason) {
                logger.warning(
                    "the EHR refuses the Group export; listing changes type by type",
                    metadata: ["status": "\(status)", "reason": "\(reason)"])
                try replica.syncState.set([State.groupExportRefused: "HTTP \(status): \(reason)"])
                return nil
            }
            statusURL = location
            manifestText = try await job.poll(location)
        }
        guard let manifest = BulkExportJob.Manifest.decode(manifestText!) else {
            throw RemoteError.badResponse(route: "$export", reason: "the export manifest is not valid")
        }
        guard let at = SyncCursor(manifest.transactionTime) else {
            throw RemoteError.badResponse(route: "$export", reason: "transactionTime is not an instant")
        }
        // The export's own time is the cycle's start (the next cursor).
        listing.cycleStart = min(listing.cycleStart ?? at.serverTime, at.serverTime)
        let outputs = manifest.output.filter { FHIRID.isValidType($0.type) && accepts($0.type) }
        let deleted = manifest.deleted ?? []
        try job.checkOrigins(outputs + deleted)
        let sendCredentials = manifest.requiresAccessToken ?? true
        var covered = ServerCapabilities.patientCompartment.filter(accepts)
        for output in outputs {
            covered.insert(output.type)
            if context.coverage[output.type].map({ $0.access == .search || $0.access == .perPatient }) != true {
                // Served after all (found in the export): mirrored from now on, its first copy
                // made next cycle.
                try context.mark(output.type, .search)
            }
            var upserts: [(String, String?, PreparedVersion)] = []
            _ = try await client.streamLines(
                output.url, sendCredentials: sendCredentials, maxLineBytes: settings.maxResourceBytes, batchSize: 500
            ) { batch in
                for p in context.prepare(batch, types: [output.type]).prepared {
                    upserts.append(("\(output.type)/\(p.envelope.id)", p.envelope.versionId, p))
                }
            }
            for (key, version, p) in upserts { listing.changes.record(key, version: version, .upsert(p)) }
        }
        var deletions: [(FHIRReference, String?)] = []
        for file in deleted {
            _ = try await client.streamLines(
                file.url, sendCredentials: sendCredentials, maxLineBytes: settings.maxResourceBytes, batchSize: 500
            ) { batch in
                for line in batch {
                    guard let bundle = try? BundlePage.parse(line) else { continue }
                    for entry in bundle.entries {
                        if let ref = entry.deletedReference, accepts(ref.type) {
                            deletions.append((ref, entry.deletedVersion))
                        }
                    }
                }
            }
        }
        for (ref, version) in deletions {
            listing.changes.record(ref.string, version: version, .delete(type: ref.type, id: ref.id, version: version))
        }
        await job.release(statusURL)
        logger.debug(
            "group export listed", metadata: ["files": "\(outputs.count)", "deleted_files": "\(deleted.count)"])
        return covered
    }
}
