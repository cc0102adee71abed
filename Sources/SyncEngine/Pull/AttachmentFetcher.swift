import Foundation
import Logging
import SyncModel
import SyncStore

/// Fetches DocumentReference attachments given by `url` on the EHR's own server and stores
/// them sealed in the replica; inline `data` stays in the resource as it is. URLs that fail
/// are kept (sealed) and retried at the next cycle; other servers' URLs are not fetched.
/// Each is asked with its declared content type (a `Binary/[id]` then answers with the bytes);
/// a server that answers with a Binary resource instead has its `data` decoded.
struct AttachmentFetcher {
    let context: PullContext

    /// Absolute URLs of the attachments of DocumentReferences among `versions`, each with its
    /// declared content type after a tab where it has one (the form kept in sync_state).
    func urls(in versions: [PreparedVersion]) -> [String] {
        var urls: [String] = []
        for p in versions where p.envelope.resourceType == "DocumentReference" {
            guard let object = try? JSONValue(data: p.bytes) else { continue }
            for content in object["content"]?.arrayValue ?? [] {
                guard let attachment = content["attachment"], attachment["data"] == nil,
                    let url = attachment["url"]?.stringValue, !url.hasPrefix("#"), !url.hasPrefix("urn:")
                else { continue }
                let absolute = context.transport.url(url)
                guard FHIRClient.origin(of: absolute) == context.transport.origin else { continue }
                let type = attachment["contentType"]?.stringValue.flatMap { t in
                    t.contains("\t") || t.contains("\n") ? nil : t
                }
                urls.append(type.map { "\(absolute)\t\($0)" } ?? absolute)
            }
        }
        return urls
    }

    /// Fetches what is not stored yet (plus earlier failures).
    func fetch(_ newURLs: [String]) async throws {
        let replica = context.replica
        var pending = Set(
            (try replica.syncState.value(SyncStateKey.attachmentsPending)).map {
                $0.split(separator: "\n").map(String.init)
            }
                ?? [])
        let before = pending
        pending.formUnion(newURLs)
        guard !pending.isEmpty else { return }
        var fetched = 0
        var failed = 0
        for entry in pending.sorted() {
            let parts = entry.split(separator: "\t", maxSplits: 1).map(String.init)
            let url = parts[0]
            let declared = parts.count > 1 ? parts[1] : nil
            if try replica.attachments.contains(url: url) {
                pending.remove(entry)
                continue
            }
            do {
                let response = try await context.transport.get(
                    url, accept: AttachmentContent.accept(contentType: declared),
                    maxBytes: context.settings.maxResourceBytes)
                guard response.status == 200 else {
                    if response.status == 404 || response.status == 410 { pending.remove(entry) }
                    failed += 1
                    continue
                }
                guard
                    let bytes = AttachmentContent.bytes(
                        body: response.body, responseContentType: response.headers["content-type"],
                        declaredContentType: declared)
                else {
                    failed += 1
                    continue
                }
                try replica.attachments.store(url: url, data: bytes)
                pending.remove(entry)
                fetched += 1
            } catch let error as RemoteError where error == .cancelled {
                throw error
            } catch {
                failed += 1
            }
        }
        if pending != before {
            try replica.syncState.set([
                SyncStateKey.attachmentsPending: pending.isEmpty ? nil : pending.sorted().joined(separator: "\n")
            ])
        }
        if fetched + failed > 0 {
            context.logger.info(
                "attachments",
                metadata: ["fetched": "\(fetched)", "failed": "\(failed)", "pending": "\(pending.count)"])
        }
    }
}
