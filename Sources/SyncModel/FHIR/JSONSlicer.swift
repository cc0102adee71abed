/// Finds the byte ranges of JSON values without building a tree, so the bytes a server
/// sent can be stored as they are (and bundles split into resources cheaply).
///
/// It checks structure (strings, nesting, literals) as it goes and throws on malformed
/// input; it does not decode numbers or string escapes.
public struct JSONSlicer {
    public enum Error: Swift.Error, Equatable {
        case malformed(offset: Int)
    }

    let bytes: UnsafeRawBufferPointer

    /// The members of the object at `range`: key (unescaped only for plain ASCII keys) →
    /// value range.
    public static func members(of data: [UInt8], in range: Range<Int>? = nil) throws(Error) -> [(
        key: String, value: Range<Int>
    )] {
        try data.withUnsafeBytes { raw in
            let slicer = JSONSlicer(bytes: raw)
            var i = range?.lowerBound ?? 0
            let end = range?.upperBound ?? raw.count
            return Result { () throws(Error) in try slicer.objectMembers(&i, end: end) }
        }.get()
    }

    /// The members of the object at `range` of raw bytes.
    public static func members(ofRaw raw: UnsafeRawBufferPointer, in range: Range<Int>) throws(Error) -> [(
        key: String, value: Range<Int>
    )] {
        let slicer = JSONSlicer(bytes: raw)
        var i = range.lowerBound
        return try slicer.objectMembers(&i, end: range.upperBound)
    }

    /// The string at `range` of raw bytes, unescaped.
    public static func string(inRaw raw: UnsafeRawBufferPointer, at range: Range<Int>) -> String? {
        guard range.count >= 2, raw[range.lowerBound] == 0x22, raw[range.upperBound - 1] == 0x22 else { return nil }
        let inner = UnsafeRawBufferPointer(rebasing: raw[(range.lowerBound + 1)..<(range.upperBound - 1)])
        if !inner.contains(0x5C) { return String(decoding: inner, as: UTF8.self) }
        return decodeEscaped(Array(UnsafeRawBufferPointer(rebasing: raw[range])))
    }

    /// The element ranges of the array at `range`.
    public static func elements(of data: [UInt8], in range: Range<Int>) throws(Error) -> [Range<Int>] {
        try data.withUnsafeBytes { raw in
            let slicer = JSONSlicer(bytes: raw)
            var i = range.lowerBound
            return Result { () throws(Error) in try slicer.arrayElements(&i, end: range.upperBound) }
        }.get()
    }

    /// One pass over a whole resource: its top-level `resourceType` and `id`, and the value of
    /// every `reference` member at any depth (for `_include` and `$everything` without
    /// building the tree).
    ///
    /// - Parameter referenceTypes: keep only relative references `Type/…` to these types
    ///   (the others cost no allocation); nil keeps every reference.
    public static func identityAndReferences(
        ofRaw raw: UnsafeRawBufferPointer, referenceTypes: Set<String>? = nil
    ) throws(Error) -> (
        resourceType: String?, id: String?, references: [String]
    ) {
        let slicer = JSONSlicer(bytes: raw)
        var i = 0
        slicer.skipSpace(&i, raw.count)
        guard i < raw.count, raw[i] == 0x7B else { throw .malformed(offset: i) }
        var collected: Found? = Found(referenceTypes: referenceTypes)
        try slicer.skipValue(&i, raw.count, depth: 0, found: &collected)
        slicer.skipSpace(&i, raw.count)
        guard i == raw.count, let found = collected else { throw .malformed(offset: i) }
        return (
            found.resourceType.flatMap { string(inRaw: raw, at: $0) }, found.id.flatMap { string(inRaw: raw, at: $0) },
            found.references.compactMap { string(inRaw: raw, at: $0) }
        )
    }

    /// The string value at `range` (a JSON string), unescaped.
    public static func string(in data: [UInt8], at range: Range<Int>) -> String? {
        guard range.count >= 2, data[range.lowerBound] == 0x22, data[range.upperBound - 1] == 0x22 else { return nil }
        let inner = data[(range.lowerBound + 1)..<(range.upperBound - 1)]
        if !inner.contains(0x5C) { return String(decoding: inner, as: UTF8.self) }
        // Rare: escapes. Let a real decoder handle them.
        return Self.decodeEscaped(Array(data[range]))
    }

    private static func decodeEscaped(_ quoted: [UInt8]) -> String? {
        var out: [UInt8] = []
        var i = 1
        while i < quoted.count - 1 {
            let b = quoted[i]
            if b != 0x5C {
                out.append(b)
                i += 1
                continue
            }
            guard i + 1 < quoted.count - 1 else { return nil }
            let e = quoted[i + 1]
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard i + 5 < quoted.count,
                    let code = UInt32(String(decoding: quoted[(i + 2)...(i + 5)], as: UTF8.self), radix: 16)
                else { return nil }
                var scalarValue = code
                var consumed = 6
                if (0xD800...0xDBFF).contains(code), i + 11 < quoted.count, quoted[i + 6] == 0x5C,
                    quoted[i + 7] == 0x75,
                    let low = UInt32(String(decoding: quoted[(i + 8)...(i + 11)], as: UTF8.self), radix: 16),
                    (0xDC00...0xDFFF).contains(low)
                {
                    scalarValue = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    consumed = 12
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { return nil }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
                i += consumed
                continue
            default: return nil
            }
            i += 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Scanner

    /// What ``identityAndReferences(ofRaw:)`` collects while skipping.
    struct Found {
        var referenceTypes: Set<String>?
        var resourceType: Range<Int>?
        var id: Range<Int>?
        var references: [Range<Int>] = []
    }

    /// Whether the reference string at `range` (quotes included) points at one of `types`.
    private func referencesOneOf(_ types: Set<String>, _ range: Range<Int>) -> Bool {
        var slash = range.lowerBound + 1
        while slash < range.upperBound - 1, bytes[slash] != UInt8(ascii: "/") { slash += 1 }
        guard slash < range.upperBound - 1, slash - range.lowerBound - 1 <= 64 else { return false }
        let type = String(
            decoding: UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<slash]), as: UTF8.self)
        return types.contains(type)
    }

    @inline(__always) private func keyIs(_ literal: StaticString, _ range: Range<Int>) -> Bool {
        guard range.count == literal.utf8CodeUnitCount + 2 else { return false }
        let start = literal.utf8Start
        for k in 0..<literal.utf8CodeUnitCount where bytes[range.lowerBound + 1 + k] != start[k] { return false }
        return true
    }

    @inline(__always) private func skipSpace(_ i: inout Int, _ end: Int) {
        while i < end {
            let b = bytes[i]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 } else { return }
        }
    }

    private func objectMembers(_ i: inout Int, end: Int) throws(Error) -> [(key: String, value: Range<Int>)] {
        skipSpace(&i, end)
        guard i < end, bytes[i] == 0x7B else { throw .malformed(offset: i) }
        i += 1
        var result: [(key: String, value: Range<Int>)] = []
        skipSpace(&i, end)
        if i < end, bytes[i] == 0x7D { return result }
        while true {
            skipSpace(&i, end)
            let keyStart = i
            try skipString(&i, end)
            let key = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(keyStart + 1)..<(i - 1)]), as: UTF8.self)
            skipSpace(&i, end)
            guard i < end, bytes[i] == 0x3A else { throw .malformed(offset: i) }
            i += 1
            skipSpace(&i, end)
            let valueStart = i
            try skipValue(&i, end, depth: 0)
            result.append((key, valueStart..<i))
            skipSpace(&i, end)
            guard i < end else { throw .malformed(offset: i) }
            if bytes[i] == 0x2C {
                i += 1
                continue
            }
            guard bytes[i] == 0x7D else { throw .malformed(offset: i) }
            i += 1
            return result
        }
    }

    private func arrayElements(_ i: inout Int, end: Int) throws(Error) -> [Range<Int>] {
        skipSpace(&i, end)
        guard i < end, bytes[i] == 0x5B else { throw .malformed(offset: i) }
        i += 1
        var result: [Range<Int>] = []
        skipSpace(&i, end)
        if i < end, bytes[i] == 0x5D { return result }
        while true {
            skipSpace(&i, end)
            let start = i
            try skipValue(&i, end, depth: 0)
            result.append(start..<i)
            skipSpace(&i, end)
            guard i < end else { throw .malformed(offset: i) }
            if bytes[i] == 0x2C {
                i += 1
                continue
            }
            guard bytes[i] == 0x5D else { throw .malformed(offset: i) }
            i += 1
            return result
        }
    }

    private func skipString(_ i: inout Int, _ end: Int) throws(Error) {
        guard i < end, bytes[i] == 0x22 else { throw .malformed(offset: i) }
        i += 1
        while i < end {
            // 8 bytes at a time while none is a quote, a backslash or a control byte (long
            // strings: narratives, notes, base64 attachments), with the usual bit tricks:
            // a byte below n sets its top bit in (v - n·0x01…) & ~v & 0x80….
            while i + 8 <= end {
                let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let quote = v ^ 0x2222_2222_2222_2222
                let backslash = v ^ 0x5C5C_5C5C_5C5C_5C5C
                let special =
                    ((quote &- 0x0101_0101_0101_0101) & ~quote)
                    | ((backslash &- 0x0101_0101_0101_0101) & ~backslash)
                    | ((v &- 0x2020_2020_2020_2020) & ~v)
                if special & 0x8080_8080_8080_8080 != 0 { break }
                i += 8
            }
            guard i < end else { break }
            let b = bytes[i]
            if b == 0x22 {
                i += 1
                return
            }
            if b == 0x5C {
                i += 2
                continue
            }
            if b < 0x20 { throw .malformed(offset: i) }
            i += 1
        }
        throw .malformed(offset: i)
    }

    private func skipValue(_ i: inout Int, _ end: Int, depth: Int) throws(Error) {
        var nothing: Found? = nil
        try skipValue(&i, end, depth: depth, found: &nothing)
    }

    /// Skips one value; with `found`, notes top-level identity members and `reference` strings.
    private func skipValue(_ i: inout Int, _ end: Int, depth: Int, found: inout Found?) throws(Error) {
        guard depth < 512, i < end else { throw .malformed(offset: i) }
        switch bytes[i] {
        case 0x22:
            try skipString(&i, end)
        case 0x7B, 0x5B:
            let close: UInt8 = bytes[i] == 0x7B ? 0x7D : 0x5D
            let isObject = close == 0x7D
            i += 1
            skipSpace(&i, end)
            if i < end, bytes[i] == close {
                i += 1
                return
            }
            while true {
                skipSpace(&i, end)
                var key: Range<Int>?
                if isObject {
                    let keyStart = i
                    try skipString(&i, end)
                    key = keyStart..<i
                    skipSpace(&i, end)
                    guard i < end, bytes[i] == 0x3A else { throw .malformed(offset: i) }
                    i += 1
                    skipSpace(&i, end)
                }
                let valueStart = i
                try skipValue(&i, end, depth: depth + 1, found: &found)
                if found != nil, let key, bytes[valueStart] == 0x22 {
                    if keyIs("reference", key) {
                        if found?.referenceTypes.map({ referencesOneOf($0, valueStart..<i) }) ?? true {
                            found?.references.append(valueStart..<i)
                        }
                    } else if depth == 0, keyIs("id", key) {
                        found?.id = valueStart..<i
                    } else if depth == 0, keyIs("resourceType", key) {
                        found?.resourceType = valueStart..<i
                    }
                }
                skipSpace(&i, end)
                guard i < end else { throw .malformed(offset: i) }
                if bytes[i] == 0x2C {
                    i += 1
                    continue
                }
                guard bytes[i] == close else { throw .malformed(offset: i) }
                i += 1
                return
            }
        default:
            // number, true, false, null
            let start = i
            while i < end {
                let b = bytes[i]
                let isToken =
                    (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2B || b == 0x2E || (b >= 0x61 && b <= 0x7A)
                    || b == 0x45
                if !isToken { break }
                i += 1
            }
            guard i > start else { throw .malformed(offset: i) }
        }
    }
}
