public import Foundation

/// One page of a FHIR Bundle (searchset or history), with each entry's resource kept as the
/// bytes the server sent.
public struct BundlePage: Sendable {
    public struct Entry: Sendable {
        /// The resource's raw JSON, when present.
        public var resource: Data?
        public var fullUrl: String?
        public var requestMethod: String?
        public var requestURL: String?
        public var responseStatus: String?
        public var responseEtag: String?
        public var responseLastModified: String?
        /// `search.mode` (`match`, `include`, `outcome`).
        public var searchMode: String?

        /// The version a history entry carries: `meta.versionId` is in the resource; for
        /// deletions, the `response.etag` (`W/"3"`) or a `request.url` ending `_history/3`.
        public var deletedVersion: String? {
            if let etag = responseEtag {
                let trimmed = etag.replacingOccurrences(of: "W/", with: "").trimmingCharacters(
                    in: CharacterSet(charactersIn: "\""))
                if !trimmed.isEmpty { return trimmed }
            }
            if let url = requestURL ?? fullUrl {
                let parts = url.split(separator: "/")
                if parts.count >= 2, parts[parts.count - 2] == "_history" { return String(parts[parts.count - 1]) }
            }
            return nil
        }

        /// The resource a history deletion refers to (from `request.url` or `fullUrl`).
        public var deletedReference: FHIRReference? {
            let isDelete = requestMethod == "DELETE" || (resource == nil && (responseStatus?.hasPrefix("410") ?? false))
            guard isDelete else { return nil }
            if let url = requestURL, let ref = FHIRReference(Self.stripQuery(url)) { return ref }
            if let url = fullUrl, let ref = FHIRReference(Self.stripQuery(url)) { return ref }
            return nil
        }

        static func stripQuery(_ url: String) -> String {
            url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        }
    }

    public var type: String?
    public var total: Int?
    /// `meta.lastUpdated` of the Bundle: the server's time when it built the page.
    public var lastUpdated: String?
    public var links: [String: String] = [:]
    public var entries: [Entry] = []

    public var next: String? { links["next"] }

    /// Parses a Bundle; throws ``ResourceError`` when the bytes are not a Bundle.
    public static func parse(_ data: Data) throws(ResourceError) -> BundlePage {
        let bytes = [UInt8](data)
        let members: [(key: String, value: Range<Int>)]
        do {
            members = try JSONSlicer.members(of: bytes)
        } catch {
            throw .notJSON
        }
        var page = BundlePage()
        var resourceType: String?
        for (key, range) in members {
            switch key {
            case "resourceType": resourceType = JSONSlicer.string(in: bytes, at: range)
            case "type": page.type = JSONSlicer.string(in: bytes, at: range)
            case "total": page.total = Int(String(decoding: bytes[range], as: UTF8.self))
            case "meta":
                page.lastUpdated = (try? decoder.decode(Meta.self, from: Data(bytes[range])))?.lastUpdated
            case "link":
                let links = (try? decoder.decode([Link].self, from: Data(bytes[range]))) ?? []
                for link in links {
                    if let relation = link.relation, let url = link.url { page.links[relation] = url }
                }
            case "entry":
                let elements: [Range<Int>]
                do {
                    elements = try JSONSlicer.elements(of: bytes, in: range)
                } catch {
                    throw .notJSON
                }
                for element in elements {
                    var entry = Entry()
                    guard let entryMembers = try? JSONSlicer.members(of: bytes, in: element) else { throw .notJSON }
                    for (entryKey, value) in entryMembers {
                        switch entryKey {
                        case "resource": entry.resource = Data(bytes[value])
                        case "fullUrl": entry.fullUrl = JSONSlicer.string(in: bytes, at: value)
                        case "request":
                            let request = try? decoder.decode(Request.self, from: Data(bytes[value]))
                            entry.requestMethod = request?.method
                            entry.requestURL = request?.url
                        case "response":
                            let response = try? decoder.decode(Response.self, from: Data(bytes[value]))
                            entry.responseStatus = response?.status
                            entry.responseEtag = response?.etag
                            entry.responseLastModified = response?.lastModified
                        case "search":
                            entry.searchMode = (try? decoder.decode(Search.self, from: Data(bytes[value])))?.mode
                        default: break
                        }
                    }
                    page.entries.append(entry)
                }
            default: break
            }
        }
        guard resourceType == "Bundle" else {
            throw resourceType.map { .unexpectedType(expected: "Bundle", got: $0) } ?? .missingResourceType
        }
        return page
    }

    private static let decoder = JSONDecoder()
    private struct Meta: Decodable { var lastUpdated: String? }
    private struct Link: Decodable {
        var relation: String?
        var url: String?
    }
    private struct Request: Decodable {
        var method: String?
        var url: String?
    }
    private struct Response: Decodable {
        var status: String?
        var etag: String?
        var lastModified: String?
    }
    private struct Search: Decodable { var mode: String? }
}

extension BundlePage {
    /// The first matched resource of `type` in a search Bundle, if any.
    public static func firstResource(_ data: Data, type: String) -> Data? {
        guard let page = try? parse(data) else { return nil }
        for entry in page.entries where entry.searchMode == nil || entry.searchMode == "match" {
            if let resource = entry.resource, (try? ResourceEnvelope.parse(resource))?.resourceType == type {
                return resource
            }
        }
        return nil
    }
}
