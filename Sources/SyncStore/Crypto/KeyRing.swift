import Crypto
import Foundation
import SyncModel

/// The replica's data keys, derived from one random data-encryption key (DEK).
///
/// The DEK is generated once per replica and stored wrapped (AES-256-GCM) under the KEK.
/// Three subkeys are derived from it with HKDF-SHA256, each for one purpose:
/// - `sealing`: AES-256-GCM for every stored resource version;
/// - `blinding`: HMAC-SHA256 blind indexes of resource ids and references;
/// - `hashing`: keyed content hashes (so a hash cannot confirm a guessed record);
/// - `integrity`: the row-set digests (``RowSet``).
struct KeyRing: Sendable {
    /// The DEK itself, kept only to rewrap it under a new KEK.
    let dataKeyForRotation: SymmetricKey
    let sealing: SymmetricKey
    let blinding: SymmetricKey
    let hashing: SymmetricKey
    let integrity: SymmetricKey
    /// HMAC keyed with `blinding`, copied for each blind index (the key schedule is done once).
    let blindingMAC: HMAC<SHA256>

    init(dataKey: SymmetricKey, replicaID: Data) {
        func derive(_ purpose: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: dataKey, salt: replicaID,
                info: Data("ehr-sync/\(purpose)/v1".utf8), outputByteCount: 32)
        }
        dataKeyForRotation = dataKey
        sealing = derive("seal")
        blinding = derive("blind")
        hashing = derive("hash")
        integrity = derive("rowset")
        blindingMAC = HMAC<SHA256>(key: blinding)
    }

    /// Associated data that binds a wrapped DEK to its replica.
    static func wrapContext(replicaID: Data) -> Data {
        Data("ehr-sync/dek/v1".utf8) + replicaID
    }

    /// Wraps a DEK under a KEK.
    static func wrap(dataKey: SymmetricKey, with kek: KeyEncryptionKey, replicaID: Data) throws -> Data {
        let raw = dataKey.withUnsafeBytes { Data($0) }
        let box = try AES.GCM.seal(raw, using: kek.key, authenticating: wrapContext(replicaID: replicaID))
        return box.combined!
    }

    /// Unwraps a DEK; returns nil when the KEK is not the one that wrapped it.
    static func unwrap(_ wrapped: Data, with kek: KeyEncryptionKey, replicaID: Data) -> SymmetricKey? {
        guard let box = try? AES.GCM.SealedBox(combined: wrapped),
            let raw = try? AES.GCM.open(box, using: kek.key, authenticating: wrapContext(replicaID: replicaID))
        else { return nil }
        return SymmetricKey(data: raw)
    }

    /// Blind index of a resource identity (`Type/id`): 16 bytes of HMAC-SHA256.
    func blind(type: String, id: String) -> Data {
        var mac = blindingMAC
        var text = "\(type)/\(id)"
        text.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
        return mac.finalize().withUnsafeBytes { Data($0.prefix(16)) }
    }

    /// Keyed hash of content bytes.
    func contentHash(_ bytes: some DataProtocol) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: bytes, using: hashing))
    }

    /// Seals `plaintext` with a random 96-bit nonce; the result is nonce ‖ ciphertext ‖ tag.
    func seal(_ plaintext: some DataProtocol, context: Data) throws -> Data {
        try AES.GCM.seal(plaintext, using: sealing, authenticating: context).combined!
    }

    /// Opens a sealed value; nil when it was altered or sealed for another context.
    func open(_ sealed: Data, context: Data) -> Data? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed) else { return nil }
        return try? AES.GCM.open(box, using: sealing, authenticating: context)
    }
}
