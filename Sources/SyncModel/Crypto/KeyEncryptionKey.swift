package import Crypto
public import Foundation

/// The key-encryption key (KEK): 32 bytes that wrap the replica's data key.
///
/// It is loaded from a ``KeySource`` and never stored in the replica, the configuration or
/// the logs. Rotating it rewraps the data key without touching any record.
public struct KeyEncryptionKey: Sendable {
    package let key: SymmetricKey

    /// A fresh random KEK.
    public static func generate() -> KeyEncryptionKey {
        KeyEncryptionKey(key: SymmetricKey(size: .bits256))
    }

    init(key: SymmetricKey) { self.key = key }

    /// Parses a key file: exactly 32 raw bytes, or base64 of 32 bytes on one line
    /// (surrounding white space ignored).
    public init?(fileContents data: Data) {
        if data.count == 32 {
            self.init(key: SymmetricKey(data: data))
            return
        }
        guard
            let text = String(data: data, encoding: .utf8)?
                .trimmingCharacters(in: .whitespacesAndNewlines),
            !text.contains("\n"),
            let decoded = Data(base64Encoded: text), decoded.count == 32
        else { return nil }
        self.init(key: SymmetricKey(data: decoded))
    }

    /// The key as base64 on one line, as written to key files.
    public var base64FileContents: String {
        key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
    }
}
