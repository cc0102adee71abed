public import Foundation
package import NIOCore
import NIOFoundationCompat
import SyncModel

/// FHIR R4 `searchset` Bundles around resources already serialised (they are embedded as
/// they are, not re-encoded).
public enum SearchBundle {
    public struct Links: Sendable {
        public var selfURL: String
        public var next: String?
        public var previous: String?

        public init(selfURL: String, next: String? = nil, previous: String? = nil) {
            self.selfURL = selfURL
            self.next = next
            self.previous = previous
        }
    }

    /// A resource for a Bundle, its type and id already known (no parse to build `fullUrl`).
    public struct Entry: Sendable, Equatable {
        public var resourceType: String
        public var id: String
        public var json: Data

        public init(resourceType: String, id: String, json: Data) {
            self.resourceType = resourceType
            self.id = id
            self.json = json
        }

        /// Reads type and id from the JSON; nil when it is not a resource.
        public init?(json: Data) {
            guard let envelope = try? ResourceEnvelope.parse(json) else { return nil }
            self.init(resourceType: envelope.resourceType, id: envelope.id, json: json)
        }
    }

    /// - Parameters:
    ///   - base: the FHIR base URL for `fullUrl`s, e.g. `http://127.0.0.1:8090/fhir`.
    ///   - lastUpdated: when the data was last complete (the last successful sync).
    public static func searchset(
        base: String, links: Links, total: Int?, matches: [Data], included: [Data] = [], lastUpdated: String?
    ) -> Data {
        func entries(_ list: [Data]) -> [Entry] {
            list.map { Entry(json: $0) ?? Entry(resourceType: "", id: "", json: $0) }
        }
        return searchset(
            base: base, links: links, total: total, matches: entries(matches), included: entries(included),
            lastUpdated: lastUpdated)
    }

    /// A `searchset` Bundle of resources whose type and id are known.
    public static func searchset(
        base: String, links: Links, total: Int?, matches: [Entry], included: [Entry] = [], lastUpdated: String?
    ) -> Data {
        Data(
            searchsetBuffer(
                base: base, links: links, total: total, matches: matches, included: included, lastUpdated: lastUpdated
            ).readableBytesView)
    }

    /// The Bundle written straight into the buffer the HTTP server sends: each resource's
    /// stored bytes are copied once.
    package static func searchsetBuffer(
        base: String, links: Links, total: Int?, matches: [Entry], included: [Entry] = [], lastUpdated: String?
    ) -> ByteBuffer {
        let size = matches.reduce(1024) { $0 + $1.json.count + 160 } + included.reduce(0) { $0 + $1.json.count + 160 }
        var out = ByteBufferAllocator().buffer(capacity: size)
        out.writeString(#"{"resourceType":"Bundle","id":""#)
        out.writeString(UUID().uuidString.lowercased())
        out.writeString(#"","type":"searchset""#)
        if let lastUpdated {
            out.writeString(#","meta":{"lastUpdated":"#)
            out.writeBytes(JSONValue.string(lastUpdated).data())
            out.writeString("}")
        }
        if let total { out.writeString(",\"total\":\(total)") }
        out.writeString(#","link":["#)
        var linkItems: [(String, String)] = [("self", links.selfURL)]
        if let next = links.next { linkItems.append(("next", next)) }
        if let previous = links.previous { linkItems.append(("previous", previous)) }
        for (n, (relation, url)) in linkItems.enumerated() {
            if n > 0 { out.writeString(",") }
            out.writeBytes(JSONValue.object(["relation": .string(relation), "url": .string(url)]).data())
        }
        out.writeString("]")
        // FHIR JSON has no empty arrays: `entry` only when there is one.
        guard !matches.isEmpty || !included.isEmpty else {
            out.writeString("}")
            return out
        }
        out.writeString(#","entry":["#)
        // `fullUrl` is the escaped base plus type and id, which are FHIR tokens (escaped anyway
        // when not).
        let quotedBase = JSONValue.string(base).data().dropLast()
        var first = true
        for (resources, mode) in [(matches, "match"), (included, "include")] {
            let tail = #","search":{"mode":"\#(mode)"}}"#
            for resource in resources {
                out.writeString(first ? "{" : ",{")
                first = false
                if !resource.id.isEmpty {
                    out.writeString(#""fullUrl":"#)
                    let path = "/\(resource.resourceType)/\(resource.id)"
                    if path.utf8.allSatisfy(Self.isPlain) {
                        out.writeBytes(quotedBase)
                        out.writeString(path)
                        out.writeString("\",")
                    } else {
                        out.writeBytes(JSONValue.string(base + path).data())
                        out.writeString(",")
                    }
                }
                out.writeString(#""resource":"#)
                out.writeBytes(resource.json)
                out.writeString(tail)
            }
        }
        out.writeString("]}")
        return out
    }

    /// Bytes that stand for themselves inside a JSON string.
    static func isPlain(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
    }
}
