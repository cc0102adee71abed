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

    /// The references (`Type/id`) found only inside array elements: those a resource can be
    /// sent without (the elements dropped) and still have every singular element it had.
    public static func inArraysOnly(_ value: JSONValue) -> Set<String> {
        var inArrays = Set<String>()
        var outside = Set<String>()
        func walk(_ value: JSONValue, inArray: Bool) {
            switch value {
            case .object(let object):
                for member in object {
                    if member.key == "reference", case .string(let s) = member.value, let key = key(s) {
                        if inArray { inArrays.insert(key) } else { outside.insert(key) }
                    } else {
                        walk(member.value, inArray: inArray)
                    }
                }
            case .array(let items):
                for item in items { walk(item, inArray: true) }
            default:
                break
            }
        }
        walk(value, inArray: false)
        return inArrays.subtracting(outside)
    }

    /// `value` without its references to `targets`: an array element holding one (at any
    /// depth) is dropped whole, an array left empty goes with it, and outside arrays the
    /// element holding the reference is dropped. Used to send one member of a cycle of local
    /// creates first; the references are restored by an update once every member exists.
    public static func detaching(_ value: JSONValue, _ targets: Set<String>) -> JSONValue {
        if targets.isEmpty { return value }
        func refers(_ value: JSONValue) -> Bool {
            switch value {
            case .object(let object):
                if case .string(let s)? = object["reference"], let key = key(s), targets.contains(key) { return true }
                return object.contains { refers($0.value) }
            case .array(let items):
                return items.contains(where: refers)
            default:
                return false
            }
        }
        func strip(_ value: JSONValue) -> JSONValue? {
            switch value {
            case .object(var object):
                if case .string(let s)? = object["reference"], let key = key(s), targets.contains(key) { return nil }
                var removed = false
                for member in object {
                    if let kept = strip(member.value) {
                        object[member.key] = kept
                    } else {
                        object[member.key] = nil
                        removed = true
                    }
                }
                // An element emptied by the removal goes too (FHIR has no empty elements).
                return removed && object.isEmpty ? nil : .object(object)
            case .array(let items):
                let kept = items.filter { !refers($0) }
                return kept.isEmpty ? nil : .array(kept)
            default:
                return value
            }
        }
        return strip(value) ?? value
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
