package import Foundation

/// What a patient-wide read needs of a stored resource besides its bytes: its id and the
/// references it makes. Worked out once at ingest and sealed with the body, after the JSON
/// (``appended(to:)``), so `$everything` opens each row without scanning its JSON again,
/// and the outline is as authentic as the body (no second seal to open).
package struct ResourceOutline: Equatable, Sendable {
    package var id: String
    /// Every `reference` string of the resource, in document order (duplicates kept).
    package var references: [String]

    package init(id: String, references: [String]) {
        self.id = id
        self.references = references
    }

    /// Scans a resource's JSON (one pass, no tree).
    package init(json raw: UnsafeRawBufferPointer) throws(JSONSlicer.Error) {
        let scan = try JSONSlicer.identityAndReferences(ofRaw: raw)
        guard let id = scan.id else { throw .malformed(offset: 0) }
        self.init(id: id, references: scan.references)
    }

    /// Whether the reference bytes start with one of `types` and a slash.
    private static func pointsAt(_ types: Set<String>, _ reference: UnsafeRawBufferPointer) -> Bool {
        guard let slash = reference.prefix(65).firstIndex(of: UInt8(ascii: "/")) else { return false }
        return types.contains(String(decoding: UnsafeRawBufferPointer(rebasing: reference[..<slash]), as: UTF8.self))
    }

    // MARK: In a body

    /// Ends a body that carries an outline: a NUL byte (never in JSON text, which ends with
    /// `}` or whitespace) and "OL1".
    static let trailer: [UInt8] = [0x00, 0x4F, 0x4C, 0x31]

    /// A body's plaintext: `json`, the encoded outline, its length (UInt32, little-endian)
    /// and ``trailer``.
    package func appended(to json: Data) -> Data {
        let encoded = encoded()
        var body = Data(capacity: json.count + encoded.count + 8)
        body.append(json)
        body.append(encoded)
        withUnsafeBytes(of: UInt32(encoded.count).littleEndian) { body.append(contentsOf: $0) }
        body.append(contentsOf: Self.trailer)
        return body
    }

    /// Splits a body's plaintext into the JSON (a prefix, not a copy) and the encoded outline
    /// it carries (nil for bodies stored before outlines); nil when the trailer is malformed.
    package static func split(_ body: Data) -> (json: Data, outline: Data?)? {
        let n = body.count
        guard n >= 8, body.suffix(4).elementsEqual(trailer) else { return (body, nil) }
        let length = body.withUnsafeBytes {
            Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: n - 8, as: UInt32.self)))
        }
        guard length <= n - 8 else { return nil }
        let start = body.startIndex
        return (body.prefix(n - 8 - length), body[(start + n - 8 - length)..<(start + n - 8)])
    }

    // MARK: Encoding

    /// Format 1: the byte 1, then the id and each reference as a little-endian UInt32 length
    /// and that many UTF-8 bytes.
    package func encoded() -> Data {
        var out = Data([1])
        out.reserveCapacity(
            1 + 4 * (1 + references.count) + id.utf8.count + references.reduce(0) { $0 + $1.utf8.count })
        for string in [id] + references {
            let bytes = Array(string.utf8)
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes)
        }
        return out
    }

    /// Decodes ``encoded()``; nil for anything else.
    package init?(encoded data: Data) {
        var strings: [String] = []
        let ok = data.withUnsafeBytes { raw in
            Self.forEachItem(raw) {
                strings.append(String(decoding: $0, as: UTF8.self))
                return true
            }
        }
        guard ok, let id = strings.first else { return nil }
        self.init(id: id, references: Array(strings.dropFirst()))
    }

    /// The id and the references to `types` of an encoded outline, without making strings of
    /// the other references (the read path of `$everything`); nil when it is not one.
    package static func idAndReferences(encoded raw: UnsafeRawBufferPointer, to types: Set<String>) -> (
        id: String, references: [String]
    )? {
        var id: String?
        var references: [String] = []
        let ok = forEachItem(raw) { item in
            if id == nil {
                id = String(decoding: item, as: UTF8.self)
            } else if pointsAt(types, item) {
                references.append(String(decoding: item, as: UTF8.self))
            }
            return true
        }
        guard ok, let id else { return nil }
        return (id, references)
    }

    /// The id of an encoded outline (its first item; the references are not read).
    package static func id(encoded data: Data) -> String? {
        var id: String?
        let ok = data.withUnsafeBytes { raw in
            forEachItem(raw) { item in
                id = String(decoding: item, as: UTF8.self)
                return false
            }
        }
        return ok ? id : nil
    }

    /// Calls `body` with each length-prefixed item until it returns false; false when the
    /// bytes read are not format 1.
    private static func forEachItem(_ raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        guard raw.first == 1 else { return false }
        var i = 1
        while i < raw.count {
            guard raw.count - i >= 4 else { return false }
            let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
            guard raw.count - i >= count else { return false }
            guard body(UnsafeRawBufferPointer(rebasing: raw[i..<(i + count)])) else { return true }
            i += count
        }
        return true
    }
}
