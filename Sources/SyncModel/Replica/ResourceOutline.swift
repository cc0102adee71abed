import Foundation

/// What a patient-wide read needs of a stored resource besides its bytes: its id and the
/// references it makes. Worked out once at ingest and sealed next to the body (column
/// `outline`), so `$everything` opens each row without scanning its JSON again.
///
/// The seal binds the row's type, blinded id, versionId and content hash: an outline opens
/// only beside the very body it was computed from.
struct ResourceOutline: Equatable, Sendable {
    var id: String
    /// Every `reference` string of the resource, in document order (duplicates kept).
    var references: [String]

    init(id: String, references: [String]) {
        self.id = id
        self.references = references
    }

    /// Scans a resource's JSON (one pass, no tree).
    init(json raw: UnsafeRawBufferPointer) throws(JSONSlicer.Error) {
        let scan = try JSONSlicer.identityAndReferences(ofRaw: raw)
        guard let id = scan.id else { throw .malformed(offset: 0) }
        self.init(id: id, references: scan.references)
    }

    /// Whether the reference bytes start with one of `types` and a slash.
    private static func pointsAt(_ types: Set<String>, _ reference: UnsafeRawBufferPointer) -> Bool {
        guard let slash = reference.prefix(65).firstIndex(of: UInt8(ascii: "/")) else { return false }
        return types.contains(String(decoding: UnsafeRawBufferPointer(rebasing: reference[..<slash]), as: UTF8.self))
    }

    // MARK: Encoding

    /// Format 1: the byte 1, then the id and each reference as a little-endian UInt32 length
    /// and that many UTF-8 bytes.
    func encoded() -> Data {
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
    init?(encoded data: Data) {
        var strings: [String] = []
        let ok = data.withUnsafeBytes { raw in
            Self.forEachItem(raw) { strings.append(String(decoding: $0, as: UTF8.self)) }
        }
        guard ok, let id = strings.first else { return nil }
        self.init(id: id, references: Array(strings.dropFirst()))
    }

    /// The id and the references to `types` of an encoded outline, without making strings of
    /// the other references (the read path of `$everything`); nil when it is not one.
    static func idAndReferences(encoded raw: UnsafeRawBufferPointer, to types: Set<String>) -> (
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
        }
        guard ok, let id else { return nil }
        return (id, references)
    }

    /// Calls `body` with each length-prefixed item; false when the bytes are not format 1.
    private static func forEachItem(_ raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard raw.first == 1 else { return false }
        var i = 1
        while i < raw.count {
            guard raw.count - i >= 4 else { return false }
            let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
            guard raw.count - i >= count else { return false }
            body(UnsafeRawBufferPointer(rebasing: raw[i..<(i + count)]))
            i += count
        }
        return true
    }
}
