import Crypto
import Foundation

/// An incremental, keyed hash of a set of rows (LtHash-style): the sum, lane by lane modulo
/// 2⁶⁴, of each row's keyed element hash, with the number of rows. Adding a row adds its
/// element, removing it subtracts it, so the digest follows every insert, update and delete in
/// constant time, and the digest of a table is the same whatever order its rows came in.
///
/// Elements are HMAC-SHA256 under the replica's integrity key: without the key no one can
/// compute the element of a row, so no change to the rows (a row removed, an older sealed
/// version put back, a row copied from elsewhere) can be matched by an edit to the digest.
/// The stored form carries a MAC over (set name, sum, count) so the count, which the cheap
/// check at start compares with `COUNT(*)`, cannot be edited either. A digest whose MAC does
/// not verify stays invalid through later updates (``adding(_:sign:)`` never re-seals one),
/// so a write after tampering does not launder it.
struct RowSetDigest: Equatable, Sendable {
    /// Four 64-bit lanes: the 256 bits of an element.
    var lanes: [UInt64] = [0, 0, 0, 0]
    var count: Int64 = 0
    /// False once a stored digest failed its MAC.
    var valid = true

    static let empty = RowSetDigest()
    /// Stored size: lanes, count, MAC.
    static let encodedSize = 32 + 8 + 32

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

    /// The sum of several digests (the whole replica's from its tables').
    static func sum(_ digests: some Sequence<RowSetDigest>) -> RowSetDigest {
        digests.reduce(into: RowSetDigest()) { total, digest in
            for lane in 0..<4 { total.lanes[lane] &+= digest.lanes[lane] }
            total.count &+= digest.count
            total.valid = total.valid && digest.valid
        }
    }

    /// Whether two digests hold the same rows (validity aside).
    func sameRows(as other: RowSetDigest) -> Bool { lanes == other.lanes && count == other.count }

    /// The element of one row: HMAC-SHA256 over its table and every column value, each
    /// tagged with its kind and length, so no two different rows share an encoding.
    static func element(table: String, values: [RowSetValue], key: SymmetricKey) -> Data {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data("rowset-element/v1|\(table)|".utf8))
        for value in values {
            switch value {
            case .null: mac.update(data: [0])
            case .integer(let n): mac.update(data: [1] + bytes(of: UInt64(bitPattern: n)))
            case .real(let d): mac.update(data: [2] + bytes(of: d.bitPattern))
            case .text(let s):
                let utf8 = Data(s.utf8)
                mac.update(data: [3] + bytes(of: UInt64(utf8.count)))
                mac.update(data: utf8)
            case .blob(let b):
                mac.update(data: [4] + bytes(of: UInt64(b.count)))
                mac.update(data: b)
            }
        }
        return Data(mac.finalize())
    }

    private static func bytes(of value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// The stored form: lanes, count, and the MAC binding them to the set's `name`. An
    /// invalid digest is stored with a zero MAC, which never verifies.
    func encoded(name: String, key: SymmetricKey) -> Data {
        var body = Data(capacity: Self.encodedSize)
        for lane in lanes { body.append(contentsOf: Self.bytes(of: lane)) }
        body.append(contentsOf: Self.bytes(of: UInt64(bitPattern: count)))
        let tag = valid ? Self.mac(body, name: name, key: key) : Data(repeating: 0, count: 32)
        return body + tag
    }

    /// Reads a stored digest; `valid` is false when its MAC does not verify (altered, copied
    /// from another set, or made without the key).
    init(encoded: Data, name: String, key: SymmetricKey) {
        guard encoded.count == Self.encodedSize else {
            self.init(lanes: [0, 0, 0, 0], count: 0, valid: false)
            return
        }
        let bytes = Array(encoded)
        func word(_ at: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        let body = Data(bytes[0..<40])
        let tag = Data(bytes[40..<72])
        self.init(
            lanes: (0..<4).map { word($0 * 8) }, count: Int64(bitPattern: word(32)),
            valid: Self.mac(body, name: name, key: key) == tag)
    }

    init(lanes: [UInt64] = [0, 0, 0, 0], count: Int64 = 0, valid: Bool = true) {
        self.lanes = lanes
        self.count = count
        self.valid = valid
    }

    private static func mac(_ body: Data, name: String, key: SymmetricKey) -> Data {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data("rowset-digest/v1|\(name)|".utf8))
        mac.update(data: body)
        return Data(mac.finalize())
    }
}

/// One column value of a row, as SQLite gives it.
enum RowSetValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
}
