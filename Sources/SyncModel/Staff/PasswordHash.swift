import Crypto
import Foundation
import _CryptoExtras

/// Staff passwords, hashed with PBKDF2-HMAC-SHA256 (600 000 rounds, OWASP 2023) and a
/// random 16-byte salt, stored as `pbkdf2-sha256$ROUNDS$SALT$HASH` (base64).
public enum PasswordHash {
    public static let rounds = 600_000
    /// Shortest password accepted.
    public static let minimumLength = 10

    public static func make(_ password: String, rounds: Int = rounds) throws(PasswordError) -> String {
        guard password.count >= minimumLength else { throw .tooShort(minimumLength) }
        let salt = Data(SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) })
        let hash = try derive(password, salt: salt, rounds: rounds)
        return "pbkdf2-sha256$\(rounds)$\(salt.base64EncodedString())$\(hash.base64EncodedString())"
    }

    /// Checks a password against a stored hash in constant time (for the hash comparison).
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds >= 1,
            let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
            let actual = try? derive(password, salt: salt, rounds: rounds)
        else { return false }
        return constantTimeEqual(actual, expected)
    }

    static func derive(_ password: String, salt: Data, rounds: Int) throws(PasswordError) -> Data {
        do {
            let key = try KDF.Insecure.PBKDF2.deriveKey(
                from: Data(password.utf8), salt: salt, using: .sha256, outputByteCount: 32,
                unsafeUncheckedRounds: rounds)
            return key.withUnsafeBytes { Data($0) }
        } catch {
            throw .failed
        }
    }

    static func constantTimeEqual(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

public enum PasswordError: Error, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case failed

    public var description: String {
        switch self {
        case .tooShort(let n): "the password must be at least \(n) characters"
        case .failed: "the password could not be hashed"
        }
    }
}
