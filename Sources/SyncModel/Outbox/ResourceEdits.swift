public import Foundation

/// Small pure edits of resources on their way into and out of the outbox.
public enum ResourceEdits {
    /// The identifier system of client identifiers (`urn:uuid:…` values).
    public static let clientIdentifierSystem = "urn:ietf:rfc:3986"

    /// R4 resource types with no `identifier` list: their creates are made idempotent with a
    /// `meta.tag` instead.
    public static let typesWithoutIdentifier: Set<String> = [
        "Binary", "Bundle", "Parameters", "Provenance", "AuditEvent", "OperationOutcome", "Subscription",
        "Linkage", "MessageHeader", "CapabilityStatement", "StructureMap", "SearchParameter",
    ]

    /// Parses a client's resource strictly; it must be an object of `resourceType`.
    public static func parse(_ data: Data, resourceType: String) throws(OutboxError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONValue(data: data)
        } catch {
            throw .invalid("the body is not valid JSON (\(error))")
        }
        guard case .object(let object) = value else { throw .invalid("the body is not a JSON object") }
        guard case .string(let type)? = object["resourceType"] else { throw .invalid("resourceType is missing") }
        guard type == resourceType else {
            throw .invalid("resourceType \(type) does not match the URL's \(resourceType)")
        }
        return object
    }

    /// Drops server bookkeeping (`meta.versionId`, `meta.lastUpdated`) and our pending tag.
    public static func withoutServerMeta(_ object: JSONObject) -> JSONObject {
        var object = object
        guard case .object(var meta)? = object["meta"] else { return object }
        meta["versionId"] = nil
        meta["lastUpdated"] = nil
        if case .array(let tags)? = meta["tag"] {
            let kept = tags.filter { $0["system"] != .string(PendingTag.system) }
            meta["tag"] = kept.isEmpty ? nil : .array(kept)
        }
        object["meta"] = meta.isEmpty ? nil : .object(meta)
        return object
    }

    /// The resource without `meta` at all: what the three-way merge and content comparisons see.
    public static func withoutMeta(_ object: JSONObject) -> JSONObject {
        var object = object
        object["meta"] = nil
        return object
    }

    /// Adds the pending tag for the local view.
    package static func tagged(_ object: JSONObject, state: OutboxState) -> JSONObject {
        var object = object
        var meta: JSONObject = object["meta"]?.objectValue ?? JSONObject()
        var tags = meta["tag"]?.arrayValue ?? []
        tags.removeAll { $0["system"] == .string(PendingTag.system) }
        tags.append(PendingTag.coding(state))
        meta["tag"] = .array(tags)
        object["meta"] = .object(meta)
        return object
    }

    /// Adds the client identifier (or, for types without `identifier`, a tag) once.
    public static func withClientIdentifier(_ object: JSONObject, resourceType: String, value: String) -> JSONObject {
        var object = object
        let entry: JSONValue = ["system": .string(clientIdentifierSystem), "value": .string(value)]
        if typesWithoutIdentifier.contains(resourceType) {
            var meta: JSONObject = object["meta"]?.objectValue ?? JSONObject()
            var tags = meta["tag"]?.arrayValue ?? []
            let tag: JSONValue = ["system": .string(clientIdentifierSystem), "code": .string(value)]
            if !tags.contains(tag) { tags.append(tag) }
            meta["tag"] = .array(tags)
            object["meta"] = .object(meta)
            return object
        }
        var identifiers = object["identifier"]?.arrayValue ?? []
        if !identifiers.contains(where: { $0["system"] == entry["system"] && $0["value"] == entry["value"] }) {
            identifiers.append(entry)
        }
        object["identifier"] = .array(identifiers)
        return object
    }

    /// The search that finds a create by its client identifier: as an `If-None-Exist`
    /// header value, or percent-encoded for a URL.
    public static func clientIdentifierQuery(resourceType: String, value: String, forURL: Bool) -> String {
        var token = "\(clientIdentifierSystem)|\(value)"
        if forURL {
            token =
                token.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: ":-._")))
                ?? token
        }
        return typesWithoutIdentifier.contains(resourceType) ? "_tag=\(token)" : "identifier=\(token)"
    }
}
