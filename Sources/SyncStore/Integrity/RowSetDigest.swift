import Crypto
import Foundation
import GRDB

/// An incremental, keyed hash of a set of rows (LtHash-style): the sum, lane by lane modulo
/// 2⁶⁴, of each row's keyed element hash, with the number of rows. Adding a row adds its
/// element, removing it subtracts it, so the digest follows every insert, update and delete in
/// constant time, and the digest of a table is the same whatever order its rows came in.
///
/// Elements are HMAC-SHA256 under the replica's integrity key: without the key no one can
/// compute the element of a row, so no change to the rows (a row removed, an older sealed
/// version put back, a row copied from elsewhere) can be matched by an edit to the digest.
/// Digests are stored together, sealed by one MAC (``RowSetState``), so the counts, which the
/// cheap check at start compares with `COUNT(*)`, cannot be edited either; a state whose MAC
/// does not verify stays invalid through later updates, so a write after tampering does not
/// launder it.
struct RowSetDigest: Equatable, Sendable {
    /// Four 64-bit lanes: the 256 bits of an element.
    var lanes: [UInt64] = [0, 0, 0, 0]
    var count: Int64 = 0

    static let empty = RowSetDigest()

    /// The digest with one element added (`sign` 1) or removed (`sign` -1).
    func adding(_ element: Data, sign: Int64) -> RowSetDigest {
        var next = self
        element.withUnsafeBytes { raw in
            for lane in 0..<4 {
                let value = raw.loadUnaligned(fromByteOffset: lane * 8, as: UInt64.self)
                next.lanes[lane] = sign >= 0 ? next.lanes[lane] &+ value : next.lanes[lane] &- value
            }
        }
        next.count &+= sign >= 0 ? 1 : -1
        return next
    }

    /// Whether two digests hold the same rows.
    func sameRows(as other: RowSetDigest) -> Bool { lanes == other.lanes && count == other.count }

    /// The element of one row: HMAC-SHA256 (`mac`: keyed, prefix absorbed, copied per call)
    /// over its table and every column value, each tagged with its kind and length, so no two
    /// different rows share an encoding. One buffer, one update: this runs on every write.
    static func element(table: String, values: ArraySlice<DatabaseValue>, mac: HMAC<SHA256>) -> Data {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        func append(_ word: UInt64) { withUnsafeBytes(of: word.littleEndian) { buffer.append(contentsOf: $0) } }
        buffer.append(contentsOf: table.utf8)
        buffer.append(UInt8(ascii: "|"))
        for value in values {
            switch value.storage {
            case .null: buffer.append(0)
            case .int64(let n):
                buffer.append(1)
                append(UInt64(bitPattern: n))
            case .double(let d):
                buffer.append(2)
                append(d.bitPattern)
            case .string(let text):
                buffer.append(3)
                append(UInt64(text.utf8.count))
                buffer.append(contentsOf: text.utf8)
            case .blob(let bytes):
                buffer.append(4)
                append(UInt64(bytes.count))
                buffer.append(contentsOf: bytes)
            }
        }
        var mac = mac
        mac.update(data: buffer)
        return Data(mac.finalize())
    }
}

/// Every protected table's ``RowSetDigest`` in one sealed value (the `row_set` row `tables`):
/// one MAC over all of them, so one table's digest cannot be put back from an older copy
/// without every other table's; a write updates one lane group and re-seals the whole.
struct RowSetState: Equatable, Sendable {
    var digests: [RowSetDigest]
    /// False once the stored state failed its MAC (kept false by later writes).
    var valid = true

    static let digestSize = 40

    init(tables: Int) {
        digests = Array(repeating: RowSetDigest(), count: tables)
    }

    init(digests: [RowSetDigest], valid: Bool = true) {
        self.digests = digests
        self.valid = valid
    }

    /// Reads a stored state of `tables` digests; `valid` is false when its MAC (`mac`: keyed,
    /// prefix absorbed) does not verify. `trusted` skips the check, for bytes known to be the
    /// ones this process last sealed.
    init(encoded: Data, tables: Int, mac: HMAC<SHA256>, trusted: Bool = false) {
        let size = tables * Self.digestSize
        guard encoded.count == size + 32 else {
            self.init(digests: Array(repeating: RowSetDigest(), count: tables), valid: false)
            return
        }
        let digests = encoded.withUnsafeBytes { raw in
            (0..<tables).map { t in
                let base = t * Self.digestSize
                return RowSetDigest(
                    lanes: (0..<4).map {
                        UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + $0 * 8, as: UInt64.self))
                    },
                    count: Int64(
                        bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 32, as: UInt64.self)))
                )
            }
        }
        let valid = trusted || Self.tag(encoded.prefix(size), mac: mac) == encoded.suffix(32)
        self.init(digests: digests, valid: valid)
    }

    /// A stored state with one element added to (`sign` 1) or removed from (`sign` -1) the
    /// digest of table `index`, worked on the stored bytes in place (this runs on every write);
    /// an invalid state stays invalid (its MAC zeros).
    static func adding(
        _ element: Data, sign: Int64, to stored: Data, index: Int, tables: Int, mac: HMAC<SHA256>, trusted: Bool
    ) -> (encoded: Data, valid: Bool) {
        let size = tables * digestSize
        guard stored.count == size + 32, element.count == 32, (0..<tables).contains(index) else {
            return (
                RowSetState(digests: Array(repeating: RowSetDigest(), count: tables), valid: false).encoded(mac: mac),
                false
            )
        }
        var bytes = Data(stored)
        let valid = trusted || tag(bytes.prefix(size), mac: mac) == bytes.suffix(32)
        let base = index * digestSize
        element.withUnsafeBytes { add in
            bytes.withUnsafeMutableBytes { raw in
                for lane in 0..<4 {
                    let offset = base + lane * 8
                    let value = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                    let delta = add.loadUnaligned(fromByteOffset: lane * 8, as: UInt64.self)
                    raw.storeBytes(
                        of: (sign >= 0 ? value &+ delta : value &- delta).littleEndian, toByteOffset: offset,
                        as: UInt64.self)
                }
                let count = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 32, as: UInt64.self))
                raw.storeBytes(
                    of: (sign >= 0 ? count &+ 1 : count &- 1).littleEndian, toByteOffset: base + 32, as: UInt64.self)
            }
        }
        let newTag = valid ? tag(bytes.prefix(size), mac: mac) : Data(repeating: 0, count: 32)
        bytes.replaceSubrange(size..<(size + 32), with: newTag)
        return (bytes, valid)
    }

    /// The stored form: every digest's lanes and count, then the MAC (zeros when invalid).
    func encoded(mac: HMAC<SHA256>) -> Data {
        var body = Data(capacity: digests.count * Self.digestSize + 32)
        for digest in digests {
            for lane in digest.lanes { withUnsafeBytes(of: lane.littleEndian) { body.append(contentsOf: $0) } }
            withUnsafeBytes(of: UInt64(bitPattern: digest.count).littleEndian) { body.append(contentsOf: $0) }
        }
        return body + (valid ? Self.tag(body, mac: mac) : Data(repeating: 0, count: 32))
    }

    private static func tag(_ body: some DataProtocol, mac: HMAC<SHA256>) -> Data {
        var mac = mac
        mac.update(data: body)
        return Data(mac.finalize())
    }
}
