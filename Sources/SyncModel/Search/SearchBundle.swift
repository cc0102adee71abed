public import Foundation

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
        var out = Data(#"{"resourceType":"Bundle","id":""#.utf8)
        out.reserveCapacity(
            matches.reduce(1024) { $0 + $1.json.count + 160 } + included.reduce(0) { $0 + $1.json.count + 160 })
        out.append(Data(UUID().uuidString.lowercased().utf8))
        out.append(Data(#"","type":"searchset""#.utf8))
        if let lastUpdated {
            out.append(Data(#","meta":{"lastUpdated":"#.utf8))
            out.append(JSONValue.string(lastUpdated).data())
            out.append(Data("}".utf8))
        }
        if let total { out.append(Data(",\"total\":\(total)".utf8)) }
        out.append(Data(#","link":["#.utf8))
        var linkItems: [(String, String)] = [("self", links.selfURL)]
        if let next = links.next { linkItems.append(("next", next)) }
        if let previous = links.previous { linkItems.append(("previous", previous)) }
        out.append(
            Data(
                linkItems.map { relation, url in
                    String(
                        decoding: JSONValue.object(["relation": .string(relation), "url": .string(url)]).data(),
                        as: UTF8.self)
                }.joined(separator: ",").utf8))
        out.append(Data("]".utf8))
        // FHIR JSON has no empty arrays: `entry` only when there is one.
        if !matches.isEmpty || !included.isEmpty { out.append(Data(#","entry":["#.utf8)) }
        var first = true
        for (resources, mode) in [(matches, "match"), (included, "include")] {
            for resource in resources {
                if !first { out.append(Data(",".utf8)) }
                first = false
                out.append(Data("{".utf8))
                if !resource.id.isEmpty {
                    out.append(Data(#""fullUrl":"#.utf8))
                    out.append(JSONValue.string("\(base)/\(resource.resourceType)/\(resource.id)").data())
                    out.append(Data(",".utf8))
                }
                out.append(Data(#""resource":"#.utf8))
                out.append(resource.json)
                out.append(Data(#","search":{"mode":"\#(mode)"}}"#.utf8))
            }
        }
        out.append(Data(!matches.isEmpty || !included.isEmpty ? "]}".utf8 : "}".utf8))
        return out
    }
}
