import Crypto
public import Foundation

/// A printable recovery key: 32 random bytes in RFC 4648 base32, grouped by four
/// (`ABCD-EFGH-…`), that unwraps the replica's data key when the KEK is lost.
///
/// It is shown once (`syncctl key backup`), to be printed and locked away; the replica keeps
/// only the data key wrapped under it.
public struct RecoveryKey: Sendable, Equatable {
    public let bytes: Data

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    public static func generate() -> RecoveryKey {
        RecoveryKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    init(bytes: Data) { self.bytes = bytes }

    /// Parses the printed form; case, spaces and dashes are ignored.
    public init?(text: String) {
        var bits = 0
        var value: UInt32 = 0
        var out = Data()
        for c in text.uppercased().utf8 where c != UInt8(ascii: "-") && c != UInt8(ascii: " ") {
            guard let index = Self.alphabet.firstIndex(of: c) else { return nil }
            value = (value << 5) | UInt32(index)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((value >> UInt32(bits)) & 0xFF))
            }
        }
        guard out.count == 32 else { return nil }
        bytes = out
    }

    /// `XXXX-XXXX-…` (13 groups).
    public var text: String {
        var chars: [UInt8] = []
        var bits = 0
        var value: UInt32 = 0
        for b in bytes {
            value = (value << 8) | UInt32(b)
            bits += 8
            while bits >= 5 {
                bits -= 5
                chars.append(Self.alphabet[Int((value >> UInt32(bits)) & 31)])
            }
        }
        if bits > 0 { chars.append(Self.alphabet[Int((value << UInt32(5 - bits)) & 31)]) }
        var groups: [String] = []
        var i = 0
        while i < chars.count {
            groups.append(String(decoding: chars[i..<min(i + 4, chars.count)], as: UTF8.self))
            i += 4
        }
        return groups.joined(separator: "-")
    }

    /// The recovery key as a KEK (to open the replica, or to write as a key file).
    public var keyEncryptionKey: KeyEncryptionKey { KeyEncryptionKey(key: SymmetricKey(data: bytes)) }
}
