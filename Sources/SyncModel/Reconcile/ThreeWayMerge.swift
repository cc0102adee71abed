/// The result of a three-way merge: one merged resource, or every conflict found.
public enum MergeOutcome: Sendable, Equatable {
    case merged(JSONValue)
    case conflicts([MergeConflict])
}

/// One place where local and remote changed the same thing differently.
///
/// `path` names the place: members joined by `.`, elements of arrays with identity by
/// their key, e.g. `name[use=official].family`, `telecom[phone|555-1234].value`,
/// `code.coding[http://loinc.org|1234-5].display`; the whole resource is the empty path.
/// A nil value means absent there (a removed member, or at the empty path a deleted
/// resource).
public struct MergeConflict: Sendable, Equatable, Codable {
    public var path: String
    public var base: JSONValue?
    public var local: JSONValue?
    public var remote: JSONValue?

    public init(path: String, base: JSONValue?, local: JSONValue?, remote: JSONValue?) {
        self.path = path
        self.base = base
        self.local = local
        self.remote = remote
    }
}

/// A FHIR-aware three-way merge of JSON resources: `base` (the server version both sides
/// started from), `local` (the practice's edit) and `remote` (the server's current version).
///
/// Pure and deterministic: the same inputs give the same output (objects are ordered by key).
///
/// - Objects merge member by member: a change on one side wins, identical changes agree,
///   different changes conflict; a member added on one side is taken; removed on one side
///   and unchanged on the other is removed; removed on one side and changed on the other
///   conflicts. Members added on both sides as objects merge as if the base were `{}`.
/// - Arrays with identity merge element by element (`identifier` and `telecom` by
///   system|value, `name` by use, `extension`/`modifierExtension` by url, `coding` by
///   system|code, at any depth), in the remote array's order, then new local elements in
///   local order. An element lacking its key fields, or a key repeated in one array, makes
///   the array atomic. Two guards keep independent key changes from silently combining:
///   in `identifier`/`telecom`/`coding`, both sides replacing an element of one system with
///   different new elements of that system conflicts; in `coding`, a merged array holding two
///   codings of one system that neither side had together conflicts.
/// - Other arrays are atomic, and so is `text` (the narrative). A primitive array and its
///   `_name` extension array change together (they are parallel): one side's `given` with the
///   other side's `_given` conflicts.
/// - On resources (the root, and objects with a `resourceType`): `meta` is the remote's;
///   `id` and `resourceType` must agree across all three versions, else they conflict.
/// - A deleted resource is `.null`: a delete against an unchanged version is taken, against
///   a changed one it conflicts (at the empty path).
///
/// `merge(b, x, x) == x`, `merge(b, b, r) == r` and `merge(b, l, b) == l` always hold.
public enum ThreeWayMerge {
    public static func merge(base: JSONValue, local: JSONValue, remote: JSONValue) -> MergeOutcome {
        if local == remote { return .merged(local) }
        if local == base { return .merged(remote) }
        if remote == base { return .merged(local) }
        var merger = Merger()
        let merged = merger.root(base: base, local: local, remote: remote)
        return merger.conflicts.isEmpty ? .merged(merged) : .conflicts(merger.conflicts)
    }

    /// Array members merged element by element, with the members that identify an element.
    static let identityFields: [String: [String]] = [
        "identifier": ["system", "value"],
        "telecom": ["system", "value"],
        "name": ["use"],
        "extension": ["url"],
        "modifierExtension": ["url"],
        "coding": ["system", "code"],
    ]

    /// Arrays whose first key field is a system, checked for concurrent replacements.
    static let systemKeyed: Set<String> = ["identifier", "telecom", "coding"]
}

// MARK: - Merger

private struct Merger {
    var conflicts: [MergeConflict] = []

    mutating func root(base: JSONValue, local: JSONValue, remote: JSONValue) -> JSONValue {
        let b: JSONValue? = base == .null ? nil : base
        let l: JSONValue? = local == .null ? nil : local
        let r: JSONValue? = remote == .null ? nil : remote
        if case .object(let lo)? = l, case .object(let ro)? = r {
            switch b {
            case nil: return .object(mergeObject("", base: JSONObject(), local: lo, remote: ro))
            case .object(let bo)?: return .object(mergeObject("", base: bo, local: lo, remote: ro))
            default: break
            }
        }
        conflict("", b, l, r)
        return remote
    }

    private mutating func conflict(_ path: String, _ b: JSONValue?, _ l: JSONValue?, _ r: JSONValue?) {
        conflicts.append(MergeConflict(path: path, base: b, local: l, remote: r))
    }

    /// Merges one value; nil in and out means absent.
    private mutating func mergeValue(
        _ path: String, field: String?, _ b: JSONValue?, _ l: JSONValue?, _ r: JSONValue?
    ) -> JSONValue? {
        if l == r { return l }
        if l == b { return r }
        if r == b { return l }
        if field != "text" {
            switch (l, r) {
            case (.object(let lo)?, .object(let ro)?):
                if b == nil { return .object(mergeObject(path, base: JSONObject(), local: lo, remote: ro)) }
                if case .object(let bo)? = b { return .object(mergeObject(path, base: bo, local: lo, remote: ro)) }
            case (.array(let la)?, .array(let ra)?):
                if let field, let keyFields = ThreeWayMerge.identityFields[field] {
                    let ba: [JSONValue]? = b == nil ? [] : b?.arrayValue
                    if let ba,
                        let merged = mergeKeyed(
                            path, field: field, keyFields: keyFields, base: ba, local: la, remote: ra,
                            originals: (b, l, r))
                    {
                        return .array(merged)
                    }
                }
            default:
                break
            }
        }
        conflict(path, b, l, r)
        return r
    }

    // MARK: Objects

    private mutating func mergeObject(
        _ path: String, base b: JSONObject, local l: JSONObject, remote r: JSONObject
    ) -> JSONObject {
        let isResource =
            path.isEmpty || b["resourceType"] != nil || l["resourceType"] != nil
            || r["resourceType"] != nil
        let keys = sortedUnion(b.keys, l.keys, r.keys)
        var out = JSONObject()
        for key in keys {
            let childPath = path.isEmpty ? key : path + "." + key
            if isResource && key == "meta" {
                out[key] = r[key]
                continue
            }
            if isResource && (key == "id" || key == "resourceType") {
                let (bv, lv, rv) = (b[key], l[key], r[key])
                if lv == rv && (bv == nil || bv == lv) {
                    out[key] = lv
                } else {
                    conflict(childPath, bv, lv, rv)
                    out[key] = rv
                }
                continue
            }
            if key.utf8.first == UInt8(ascii: "_"), isParallelPair(String(key.dropFirst()), b, l, r) {
                continue  // merged with its primitive array
            }
            if isParallelPair(key, b, l, r) {
                let extensionKey = "_" + key
                let extensionPath = path.isEmpty ? extensionKey : path + "." + extensionKey
                mergeParallel(
                    (childPath, key), (extensionPath, extensionKey), base: b, local: l, remote: r, into: &out)
                continue
            }
            out[key] = mergeValue(childPath, field: key, b[key], l[key], r[key])
        }
        return out
    }

    /// A primitive array `name` and its extension array `_name` (both present somewhere,
    /// one an array somewhere) are aligned by position, so they change as one.
    private func isParallelPair(_ name: String, _ b: JSONObject, _ l: JSONObject, _ r: JSONObject) -> Bool {
        guard !name.isEmpty, name.utf8.first != UInt8(ascii: "_") else { return false }
        let extensionKey = "_" + name
        let objects = [b, l, r]
        guard objects.contains(where: { $0[name] != nil }), objects.contains(where: { $0[extensionKey] != nil })
        else { return false }
        return objects.contains { $0[name]?.arrayValue != nil || $0[extensionKey]?.arrayValue != nil }
    }

    private enum Side {
        case agree
        case local
        case remote
        case conflict
    }

    private static func resolve(_ b: JSONValue?, _ l: JSONValue?, _ r: JSONValue?) -> (Side, JSONValue?) {
        if l == r { return (.agree, l) }
        if l == b { return (.remote, r) }
        if r == b { return (.local, l) }
        return (.conflict, r)
    }

    private mutating func mergeParallel(
        _ primitive: (path: String, key: String), _ ext: (path: String, key: String),
        base b: JSONObject, local l: JSONObject, remote r: JSONObject, into out: inout JSONObject
    ) {
        let (primitiveSide, primitiveValue) = Self.resolve(b[primitive.key], l[primitive.key], r[primitive.key])
        let (extSide, extValue) = Self.resolve(b[ext.key], l[ext.key], r[ext.key])
        let mixed =
            (primitiveSide == .local && extSide == .remote) || (primitiveSide == .remote && extSide == .local)
        if primitiveSide == .conflict || mixed {
            conflict(primitive.path, b[primitive.key], l[primitive.key], r[primitive.key])
        }
        if extSide == .conflict || mixed {
            conflict(ext.path, b[ext.key], l[ext.key], r[ext.key])
        }
        out[primitive.key] = primitiveValue
        out[ext.key] = extValue
    }

    private func sortedUnion(_ a: [String], _ b: [String], _ c: [String]) -> [String] {
        let all = (a + b + c).sorted(by: utf8Precedes)
        var keys: [String] = []
        keys.reserveCapacity(all.count)
        for key in all where keys.last.map({ !sameUTF8($0, key) }) ?? true { keys.append(key) }
        return keys
    }

    // MARK: Arrays with identity

    private struct IdentityKey: Hashable {
        var components: [[UInt8]]
        var display: String
        var system: [UInt8] { components[0] }

        static func == (lhs: IdentityKey, rhs: IdentityKey) -> Bool { lhs.components == rhs.components }
        func hash(into hasher: inout Hasher) { hasher.combine(components) }
    }

    private struct Indexed {
        var order: [IdentityKey] = []
        var elements: [IdentityKey: JSONValue] = [:]
    }

    /// Keys of an array's elements, or nil when an element lacks its key or a key repeats.
    private func index(_ array: [JSONValue], field: String, keyFields: [String]) -> Indexed? {
        var indexed = Indexed()
        for element in array {
            guard case .object(let object) = element else { return nil }
            var components: [[UInt8]] = []
            var texts: [String] = []
            for keyField in keyFields {
                guard let text = object[keyField]?.stringValue else { return nil }
                components.append(Array(text.utf8))
                texts.append(text)
            }
            let display = field == "name" ? "use=" + texts.joined(separator: "|") : texts.joined(separator: "|")
            let key = IdentityKey(components: components, display: display)
            guard indexed.elements.updateValue(element, forKey: key) == nil else { return nil }
            indexed.order.append(key)
        }
        return indexed
    }

    private mutating func mergeKeyed(
        _ path: String, field: String, keyFields: [String], base: [JSONValue], local: [JSONValue],
        remote: [JSONValue], originals: (b: JSONValue?, l: JSONValue?, r: JSONValue?)
    ) -> [JSONValue]? {
        guard let b = index(base, field: field, keyFields: keyFields),
            let l = index(local, field: field, keyFields: keyFields),
            let r = index(remote, field: field, keyFields: keyFields)
        else { return nil }
        var merged: [(key: IdentityKey, value: JSONValue)] = []
        let order = r.order + l.order.filter { r.elements[$0] == nil }
        for key in order {
            let elementPath = path + "[" + key.display + "]"
            if let value = mergeValue(elementPath, field: nil, b.elements[key], l.elements[key], r.elements[key]) {
                merged.append((key, value))
            }
        }
        if ThreeWayMerge.systemKeyed.contains(field),
            concurrentReplacement(b, l, r) || (field == "coding" && unwrittenSameSystemPair(merged.map(\.key), l, r))
        {
            conflict(path, originals.b, originals.l, originals.r)
        }
        return merged.map(\.value)
    }

    /// Both sides removed an element of system S and each added a different new one of S
    /// (e.g. the same phone number changed to two different numbers).
    private func concurrentReplacement(_ b: Indexed, _ l: Indexed, _ r: Indexed) -> Bool {
        let removedOnBoth = Set(
            b.order.filter { l.elements[$0] == nil && r.elements[$0] == nil }.map(\.system))
        guard !removedOnBoth.isEmpty else { return false }
        let addedLocally = Set(
            l.order.filter { b.elements[$0] == nil && r.elements[$0] == nil }.map(\.system))
        let addedRemotely = Set(
            r.order.filter { b.elements[$0] == nil && l.elements[$0] == nil }.map(\.system))
        return !removedOnBoth.intersection(addedLocally).intersection(addedRemotely).isEmpty
    }

    /// Two merged codings of one system that neither local nor remote holds together.
    private func unwrittenSameSystemPair(_ keys: [IdentityKey], _ l: Indexed, _ r: Indexed) -> Bool {
        for (i, first) in keys.enumerated() {
            for second in keys[(i + 1)...] where first.system == second.system {
                let inLocal = l.elements[first] != nil && l.elements[second] != nil
                let inRemote = r.elements[first] != nil && r.elements[second] != nil
                if !inLocal && !inRemote { return true }
            }
        }
        return false
    }
}
