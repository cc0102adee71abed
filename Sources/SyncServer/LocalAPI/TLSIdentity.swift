import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import SyncEngine
import SyncModel
import SyncStore
import X509

/// The certificate and key the local API serves HTTPS with: configured PEM files, or a
/// self-signed pair generated at first start and kept in the state directory (key 0600).
/// Staff check the SHA-256 fingerprint shown by `syncctl status` the first time their
/// browser meets it.
public struct TLSIdentity: Sendable {
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    /// SHA-256 of the leaf certificate's DER, as `AB:CD:…`.
    public let fingerprint: String

    public static let certificateFile = "local-api-cert.pem"
    public static let keyFile = "local-api-key.pem"

    /// Loads configured PEM files (the key file must be 0600/0400 and owned by the service user).
    public static func load(certificate: String, key: String) throws(TLSIdentityError) -> TLSIdentity {
        do {
            try KeySource.checkPermissions(path: key)
        } catch {
            throw .unusable("[local_api] tls_key: \(error.description)")
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate)
            guard let leaf = chain.first else { throw TLSIdentityError.unusable("no certificate in \(certificate)") }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            return TLSIdentity(chain: chain, key: privateKey, fingerprint: try fingerprint(of: leaf))
        } catch let error as TLSIdentityError {
            throw error
        } catch {
            throw .unusable("cannot read the TLS certificate or key (\(certificate), \(key)): \(error)")
        }
    }

    /// The self-signed identity kept in `directory`, created on first use for `hostnames`
    /// and `addresses` (IPv4 or IPv6 literals).
    public static func selfSigned(directory: String, hostnames: [String], addresses: [String]) throws(TLSIdentityError)
        -> TLSIdentity
    {
        let certPath = directory + "/" + certificateFile
        let keyPath = directory + "/" + keyFile
        if FileManager.default.fileExists(atPath: certPath), FileManager.default.fileExists(atPath: keyPath) {
            return try load(certificate: certPath, key: keyPath)
        }
        do {
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName {
                CommonName("ehr-sync local copy")
                OrganizationName("ehr-sync")
            }
            var names: [GeneralName] = hostnames.map { .dnsName($0) }
            for address in addresses {
                if let bytes = Self.ipBytes(address) {
                    names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
                }
            }
            let now = Date()
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(),
                publicKey: Certificate.PublicKey(key.publicKey), notValidBefore: now.addingTimeInterval(-3600),
                notValidAfter: now.addingTimeInterval(3 * 365 * 86_400), issuer: name, subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames(names)
                }, issuerPrivateKey: Certificate.PrivateKey(key))
            let pem = try certificate.serializeAsPEM().pemString
            try writePrivate(key.pemRepresentation, to: keyPath)
            try Data(pem.utf8).write(to: URL(fileURLWithPath: certPath), options: .atomic)
        } catch let error as TLSIdentityError {
            throw error
        } catch {
            throw .unusable("cannot create a self-signed certificate in \(directory): \(error)")
        }
        return try load(certificate: certPath, key: keyPath)
    }

    static func writePrivate(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw TLSIdentityError.unusable("cannot create \(path) (errno \(errno))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw TLSIdentityError.unusable("cannot write \(path)")
        }
    }

    static func ipBytes(_ address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func fingerprint(of certificate: NIOSSLCertificate) throws -> String {
        let der = try certificate.toDERBytes()
        return SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    /// TLS 1.2 or later only.
    var serverConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}

public struct TLSIdentityError: Error, CustomStringConvertible {
    public var description: String

    static func unusable(_ text: String) -> TLSIdentityError { TLSIdentityError(description: text) }
}
