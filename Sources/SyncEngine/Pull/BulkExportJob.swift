import Foundation
import Logging
import SyncModel
import SyncStore

/// One Bulk Data `$export` (system or Group level) as the FHIR Bulk Data Access IG runs it:
/// kick-off with `Prefer: respond-async`, status polled as the server paces it, a manifest of
/// NDJSON files. Shared by the first copy (``InitialSync``, resumable through sync_state) and
/// the incremental Group export with `_since` (``IncrementalSync``).
struct BulkExportJob {
    let context: PullContext

    enum Unavailable: Error {
        case refused(status: Int, reason: String)
    }

    struct Manifest: Decodable {
        struct Output: Decodable {
            var type: String
            var url: String
            var count: Int?
        }
        var transactionTime: String
        var requiresAccessToken: Bool?
        var output: [Output]
        /// Bulk Data v2: NDJSON files of Bundles whose entries name deleted resources.
        var deleted: [Output]?

        static func decode(_ text: String) -> Manifest? {
            try? JSONDecoder().decode(Manifest.self, from: Data(text.utf8))
        }
    }

    /// The kick-off path: system or the configured Group, ndjson, with `_since` and the
    /// practice's own type list when it pinned one.
    static func path(group: String?, since: String?, types: [String]?) -> String {
        var path = "$export"
        if let group {
            let id = group.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-", "."])) ?? group
            path = "Group/\(id)/$export"
        }
        path += "?_outputFormat=application%2Ffhir%2Bndjson"
        if let since {
            path += "&_since=" + (since.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? since)
        }
        if let types { path += "&_type=" + types.joined(separator: ",") }
        return path
    }

    /// Starts a job; its status URL and the server's Date. A server that will not export
    /// answers something else than 202: ``Unavailable/refused(status:reason:)``.
    func kickOff(_ path: String) async throws -> (location: String, serverDate: Double?) {
        let response = try await context.transport.get(path, headers: [("Prefer", "respond-async")])
        guard response.status == 202, let location = response.headers["content-location"] else {
            if response.status == 429 || response.status >= 500 {
                throw RemoteError.status(route: "$export", code: response.status)
            }
            throw Unavailable.refused(
                status: response.status, reason: TypeProbe.reason(response.body, url: path))
        }
        return (location, response.serverDate)
    }

    /// Polls the status until the manifest is ready (its text); nil when the job is gone.
    func poll(_ statusURL: String) async throws -> String? {
        while true {
            let response = try await context.transport.get(statusURL)
            switch response.status {
            case 200:
                return String(decoding: response.body, as: UTF8.self)
            case 202:
                let wait =
                    RetryAfter.seconds(
                        response.headers["retry-after"], now: response.serverDate ?? Date().timeIntervalSince1970) ?? 1
                let bounded = min(max(wait, 0.2), 120)
                context.logger.debug("export in progress", metadata: ["wait_s": "\(bounded)"])
                try await Task.sleep(for: .milliseconds(Int64(bounded * 1000)))
            case 404, 410:
                context.logger.warning("export job expired; starting a new one")
                return nil
            default:
                throw RemoteError.status(route: "$export status", code: response.status)
            }
        }
    }

    /// Tells the server its files may go (Bulk Data: DELETE on the status URL once they are
    /// read). Best effort: a server that keeps them longer loses nothing of ours.
    func release(_ statusURL: String) async {
        _ = try? await context.transport.send("DELETE", statusURL, body: nil)
    }

    /// Files only from the EHR's origin or one the practice allowed: a manifest cannot send
    /// the daemon (with or without credentials) to fetch from anywhere.
    func checkOrigins(_ outputs: [Manifest.Output]) throws {
        for output in outputs {
            let origin = FHIRClient.origin(of: context.transport.url(output.url))
            guard let origin, origin == context.transport.origin || context.settings.exportOrigins.contains(origin)
            else {
                throw RemoteError.badResponse(
                    route: "$export",
                    reason:
                        "an export file is on another server (\(origin ?? "an invalid URL")); allow it in [sync] export_origins if it is the EHR's file store"
                )
            }
        }
    }
}
