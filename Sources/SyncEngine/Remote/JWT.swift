import Crypto
public import Foundation
import SyncModel
import SyncStore
import _CryptoExtras

// Pure JSON Web Token pieces for SMART Backend Services client assertions (RFC 7515, 7519, 7523):
// base64url, the JOSE header and claims, ES384/RS384 signatures, public JWKs. No I/O.

/// base64url without padding (RFC 7515 section 2).
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        var text = Data(data).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return String(
            text.map { c -> Character in
                switch c {
                case "+": "-"
                case "/": "_"
                default: c
                }
            })
    }

    /// Decodes unpadded base64url; nil on any other character (including `=`, `+`, `/`) or an
    /// impossible length.
    public static func decode(_ text: some StringProtocol) -> Data? {
        var standard = ""
        standard.reserveCapacity(text.utf8.count + 3)
        for c in text.unicodeScalars {
            switch c {
            case "A"..."Z", "a"..."z", "0"..."9": standard.unicodeScalars.append(c)
            case "-": standard.append("+")
            case "_": standard.append("/")
            default: return nil
            }
        }
        switch standard.utf8.count % 4 {
        case 1: return nil
        case 2: standard += "=="
        case 3: standard += "="
        default: break
        }
        return Data(base64Encoded: standard)
    }
}

/// JWS signature algorithms accepted by SMART Backend Services.
public enum JWSAlgorithm: String, Sendable, Equatable {
    /// ECDSA on P-384 with SHA-384; the signature is r || s (96 bytes).
    case es384 = "ES384"
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    case rs384 = "RS384"
}

/// Why a PEM document cannot sign client assertions. Messages never carry key material.
public enum JWTKeyError: Error, Equatable, CustomStringConvertible {
    case encrypted
    case publicKeyOnly
    case unsupportedCurve(String)
    case rsaTooSmall(bits: Int)
    case notAPrivateKey

    public var description: String {
        switch self {
        case .encrypted:
            "the private key is encrypted with a passphrase, which an unattended service cannot type; "
                + "store it unencrypted in a 0600 file (openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pem)"
        case .publicKeyOnly:
            "the file holds a public key or a certificate; it must hold the private key "
                + "(the public key is what the EHR registers)"
        case .unsupportedCurve(let curve):
            "the private key is an EC \(curve) key; SMART Backend Services needs EC P-384 (ES384) or RSA (RS384)"
        case .rsaTooSmall(let bits):
            "the RSA private key has \(bits) bits; at least 2048 are required"
        case .notAPrivateKey:
            "not an EC P-384 or RSA private key in PEM form (PKCS#8 \"PRIVATE KEY\", SEC1 \"EC PRIVATE KEY\" "
                + "or PKCS#1 \"RSA PRIVATE KEY\")"
        }
    }
}

/// A private key that signs JWTs: EC P-384 (ES384) or RSA of at least 2048 bits (RS384).
public struct JWTSigningKey: Sendable {
    enum Backing: Sendable {
        case p384(P384.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }

    let backing: Backing

    /// Reads a PEM private key; the algorithm follows from the key type.
    public init(pemRepresentation pem: String) throws(JWTKeyError) {
        let labels = Self.pemLabels(pem)
        if labels.contains(where: { $0.contains("ENCRYPTED") }) || pem.contains("Proc-Type: 4,ENCRYPTED") {
            throw .encrypted
        }
        if !labels.isEmpty, !labels.contains(where: { $0.hasSuffix("PRIVATE KEY") }) {
            throw .publicKeyOnly
        }
        if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) {
            backing = .p384(key)
            return
        }
        if let key = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) {
            backing = .rsa(key)
            return
        }
        if let small = try? _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem) {
            throw .rsaTooSmall(bits: small.keySizeInBits)
        }
        if (try? P256.Signing.PrivateKey(pemRepresentation: pem)) != nil { throw .unsupportedCurve("P-256") }
        if (try? P521.Signing.PrivateKey(pemRepresentation: pem)) != nil { throw .unsupportedCurve("P-521") }
        throw .notAPrivateKey
    }

    init(backing: Backing) { self.backing = backing }

    /// A new random EC P-384 key.
    public static func generateES384() -> JWTSigningKey {
        JWTSigningKey(backing: .p384(P384.Signing.PrivateKey()))
    }

    /// A new random RSA key (2048 bits by default).
    public static func generateRS384(bits: Int = 2048) throws -> JWTSigningKey {
        JWTSigningKey(backing: .rsa(try _RSA.Signing.PrivateKey(keySize: .init(bitCount: bits))))
    }

    public var algorithm: JWSAlgorithm {
        switch backing {
        case .p384: .es384
        case .rsa: .rs384
        }
    }

    /// The private key in PEM (to write a key file; handle as a secret).
    public var pemRepresentation: String {
        switch backing {
        case .p384(let key): key.pemRepresentation
        case .rsa(let key): key.pemRepresentation
        }
    }

    /// The JWS signature of `message` (r || s for ES384, PKCS#1 v1.5 over SHA-384 for RS384).
    public func sign(_ message: some DataProtocol) throws -> Data {
        switch backing {
        case .p384(let key):
            return try key.signature(for: message).rawRepresentation
        case .rsa(let key):
            return try key.signature(for: SHA384.hash(data: message), padding: .insecurePKCS1v1_5).rawRepresentation
        }
    }

    /// The public key's required JWK members (RFC 7638 section 3.2), values in base64url.
    var publicMembers: [(String, String)] {
        switch backing {
        case .p384(let key):
            let point = key.publicKey.x963Representation.dropFirst()  // 0x04 || x || y
            return [
                ("crv", "P-384"), ("kty", "EC"), ("x", Base64URL.encode(point.prefix(48))),
                ("y", Base64URL.encode(point.suffix(48))),
            ]
        case .rsa(let key):
            // Both values are unsigned big-endian with no leading zero byte (RFC 7518 section 6.3.1).
            let primitives = try? key.publicKey.getKeyPrimitives()
            let strip = { (bytes: Data) in Base64URL.encode(bytes.drop(while: { $0 == 0 })) }
            return [
                ("e", strip(primitives?.publicExponent ?? Data())), ("kty", "RSA"),
                ("n", strip(primitives?.modulus ?? Data())),
            ]
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id when none is configured.
    public var thumbprint: String {
        let members = publicMembers.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ",")
        return Base64URL.encode(Data(SHA256.hash(data: Data("{\(members)}".utf8))))
    }

    /// The public key as a JWK, with `alg`, `use` and `kid` (the thumbprint unless given).
    public func publicJWK(keyID: String? = nil) -> [String: String] {
        var jwk = Dictionary(uniqueKeysWithValues: publicMembers)
        jwk["alg"] = algorithm.rawValue
        jwk["use"] = "sig"
        jwk["kid"] = keyID ?? thumbprint
        return jwk
    }

    /// A JWK Set `{"keys":[…]}` holding this public key, to register the client with the EHR.
    public func publicJWKS(keyID: String? = nil) -> Data {
        (try? JSONSerialization.data(
            withJSONObject: ["keys": [publicJWK(keyID: keyID)]], options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
    }

    /// The labels of the PEM blocks (`PRIVATE KEY`, `EC PRIVATE KEY`, `PUBLIC KEY`, …).
    static func pemLabels(_ pem: String) -> [String] {
        pem.split(whereSeparator: \.isNewline).compactMap { line in
            let l = line.trimmingCharacters(in: .whitespaces)
            guard l.hasPrefix("-----BEGIN "), l.hasSuffix("-----"), l.count > 16 else { return nil }
            return String(l.dropFirst(11).dropLast(5))
        }
    }
}

/// A JOSE header (RFC 7515 section 4).
public struct JOSEHeader: Codable, Sendable, Equatable {
    public var alg: String
    public var typ: String?
    public var kid: String?

    public init(alg: String, typ: String? = "JWT", kid: String? = nil) {
        self.alg = alg
        self.typ = typ
        self.kid = kid
    }
}

/// Claims of a SMART Backend Services client assertion (RFC 7523 section 3).
public struct ClientAssertionClaims: Codable, Sendable, Equatable {
    /// The client id, twice.
    public var iss: String
    public var sub: String
    /// The token endpoint URL.
    public var aud: String
    /// Expiry, seconds since 1970; at most five minutes ahead.
    public var exp: Int
    /// A unique id, so the server can refuse a replayed assertion.
    public var jti: String

    /// Claims valid for `lifetime` seconds (at most 300) from `now` (seconds since 1970).
    public init(clientID: String, tokenURL: String, now: Double, lifetime: Int = 300, jti: String = Self.randomJTI()) {
        iss = clientID
        sub = clientID
        aud = tokenURL
        exp = Int(now.rounded(.down)) + min(lifetime, 300)
        self.jti = jti
    }

    /// 128 random bits in base64url.
    public static func randomJTI() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}

/// Compact JWS serialisation.
public enum JWT {
    /// `base64url(header).base64url(claims).base64url(signature)`.
    public static func sign(header: JOSEHeader, claims: some Encodable, key: JWTSigningKey) throws -> String {
        let input = Base64URL.encode(try json(header)) + "." + Base64URL.encode(try json(claims))
        return input + "." + Base64URL.encode(try key.sign(Data(input.utf8)))
    }

    /// A signed client assertion: header `alg`, `typ: JWT`, `kid` (the key's thumbprint when `keyID` is nil).
    public static func clientAssertion(
        clientID: String, tokenURL: String, keyID: String?, key: JWTSigningKey, now: Double,
        jti: String = ClientAssertionClaims.randomJTI()
    ) throws -> String {
        try sign(
            header: JOSEHeader(alg: key.algorithm.rawValue, kid: keyID ?? key.thumbprint),
            claims: ClientAssertionClaims(clientID: clientID, tokenURL: tokenURL, now: now, jti: jti), key: key)
    }

    /// Splits a compact JWS into its decoded header, claims and signature; nil when malformed.
    public static func decode(_ token: String) -> (header: Data, claims: Data, signature: Data)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let h = Base64URL.decode(parts[0]), let c = Base64URL.decode(parts[1]),
            let s = Base64URL.decode(parts[2])
        else { return nil }
        return (h, c, s)
    }

    static func json(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}
