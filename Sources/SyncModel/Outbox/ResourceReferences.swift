/// Literal references inside a resource (`"reference": "Type/id"` at any depth), found and
/// rewritten: local creates are referenced by their local id until replay gives them a
/// server id.
public enum ResourceReferences {
    /// Every relative literal reference as `Type/id` (a `_history/…` suffix dropped), in
    /// document order, without repeats.
    public static func collect(_ value: JSONValue) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        visit(value) { reference in
            if let key = key(reference), seen.insert(key).inserted { result.append(key) }
        }
        return result
    }

    /// `value` with each relative reference whose `Type/id` is in `map` pointed at the mapped
    /// id (a `_history/…` suffix is kept).
    public static func rewrite(_ value: JSONValue, _ map: [String: String]) -> JSONValue {
        if map.isEmpty { return value }
        return transform(value, map)
    }

    /// `Type/id` of a relative literal reference, or nil for absolute URLs, fragments,
    /// `urn:` references and malformed ones.
    public static func key(_ reference: String) -> String? {
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 || (parts.count == 4 && parts[2] == "_history") else { return nil }
        let type = String(parts[0])
        let id = String(parts[1])
        guard FHIRID.isValidType(type), FHIRID.isValid(id) else { return nil }
        return "\(type)/\(id)"
    }

    private static func visit(_ value: JSONValue, _ found: (String) -> Void) {
        switch value {
        case .object(let object):
            for member in object {
                if member.key == "reference", case .string(let s) = member.value {
                    found(s)
                } else {
                    visit(member.value, found)
                }
            }
        case .array(let items):
            for item in items { visit(item, found) }
        default:
            break
        }
    }

    private static func transform(_ value: JSONValue, _ map: [String: String]) -> JSONValue {
        switch value {
        case .object(var object):
            for member in object {
                if member.key == "reference", case .string(let s) = member.value {
                    if let key = key(s), let mapped = map[key] {
                        let type = key.prefix(while: { $0 != "/" })
                        let suffix = s.dropFirst(key.utf8.count)
                        object["reference"] = .string("\(type)/\(mapped)\(suffix)")
                    }
                } else {
                    object[member.key] = transform(member.value, map)
                }
            }
            return .object(object)
        case .array(let items):
            return .array(items.map { transform($0, map) })
        default:
            return value
        }
    }
}
