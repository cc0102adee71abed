import Crypto
import Foundation
import SyncModel

/// The replica's data keys, derived from random root keys stored wrapped (AES-256-GCM)
/// under the KEK, and under the recovery key when one was made.
///
/// Two roots: the data-encryption key (DEK), which a re-key (`syncctl key rotate
/// --reencrypt`) replaces, and the index key, which stays for the replica's life (a replica
/// made before re-keys existed has one key as both). Subkeys are derived with HKDF-SHA256:
/// - from the DEK, `sealing` (AES-256-GCM for every sealed value) and `integrity` (the row-set
///   digests, ``RowSet``);
/// - from the index key, `blinding` (HMAC-SHA256 blind indexes of ids and references) and
///   `hashing` (keyed content hashes, the audit chain). Changing these would mean rebuilding
///   every index; they reveal no content.
///
/// While a re-key re-seals rows in the background, the ring also holds the previous DEK's
/// sealing key: values are opened with the current key first, then the previous one.
///
/// A class, immutable: the replica's current ring is read (under a lock) for every row a read
/// opens, and a reference is one retain where the struct's dozen keys were a dozen.
final class KeyRing: Sendable {
    let replicaID: Data
    let dataKey: SymmetricKey
    let indexKey: SymmetricKey
    /// The DEK being replaced, while rows sealed with it remain.
    let previousDataKey: SymmetricKey?
    let sealing: SymmetricKey
    let previousSealing: SymmetricKey?
    let blinding: SymmetricKey
    let hashing: SymmetricKey
    let integrity: SymmetricKey
    /// The previous DEK's integrity key, during a re-key (digests read from a snapshot taken
    /// just before it committed are sealed with it).
    let previousIntegrity: SymmetricKey?
    /// Names the DEK (not secret: 8 bytes of a hash under it), to tell which ring sealed a
    /// prepared value.
    let generation: Data
    /// HMAC keyed with `blinding`, copied for each blind index (the key schedule is done once).
    let blindingMAC: HMAC<SHA256>

    init(dataKey: SymmetricKey, indexKey: SymmetricKey? = nil, previous: SymmetricKey? = nil, replicaID: Data) {
        func derive(_ purpose: String, from root: SymmetricKey) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: root, salt: replicaID,
                info: Data("ehr-sync/\(purpose)/v1".utf8), outputByteCount: 32)
        }
        let indexKey = indexKey ?? dataKey
        self.replicaID = replicaID
        self.dataKey = dataKey
        self.indexKey = indexKey
        previousDataKey = previous
        sealing = derive("seal", from: dataKey)
        previousSealing = previous.map { derive("seal", from: $0) }
        integrity = derive("rowset", from: dataKey)
        previousIntegrity = previous.map { derive("rowset", from: $0) }
        blinding = derive("blind", from: indexKey)
        hashing = derive("hash", from: indexKey)
        generation = RowSet.generation(of: integrity)
        blindingMAC = HMAC<SHA256>(key: blinding)
    }

    /// The root keys as wrapped in a key slot: the DEK alone (one key for both roots), the DEK
    /// and the index key, or those and the previous DEK (during a re-key).
    var bundle: Data {
        func raw(_ key: SymmetricKey) -> Data { key.withUnsafeBytes { Data($0) } }
        if previousDataKey == nil, raw(indexKey) == raw(dataKey) { return raw(dataKey) }
        return raw(dataKey) + raw(indexKey) + (previousDataKey.map(raw) ?? Data())
    }

    /// The ring of an unwrapped slot; nil when the bytes are not a bundle. `resealing` keeps
    /// the previous DEK (a re-key not finished); otherwise it is dropped.
    convenience init?(bundle: Data, replicaID: Data, resealing: Bool) {
        let bytes = Array(bundle)
        guard [32, 64, 96].contains(bytes.count) else { return nil }
        let dataKey = SymmetricKey(data: bytes[0..<32])
        let indexKey = bytes.count >= 64 ? SymmetricKey(data: bytes[32..<64]) : dataKey
        let previous = bytes.count == 96 && resealing ? SymmetricKey(data: bytes[64..<96]) : nil
        self.init(dataKey: dataKey, indexKey: indexKey, previous: previous, replicaID: replicaID)
    }

    /// The ring of a re-key: a new DEK, the same index key, this ring's DEK as the previous.
    func rekeyed() -> KeyRing {
        KeyRing(dataKey: SymmetricKey(size: .bits256), indexKey: indexKey, previous: dataKey, replicaID: replicaID)
    }

    /// Associated data that binds a wrapped DEK to its replica.
    static func wrapContext(replicaID: Data) -> Data {
        Data("ehr-sync/dek/v1".utf8) + replicaID
    }

    /// Wraps a DEK under a KEK.
    static func wrap(dataKey: SymmetricKey, with kek: KeyEncryptionKey, replicaID: Data) throws -> Data {
        try wrap(bundle: dataKey.withUnsafeBytes { Data($0) }, with: kek, replicaID: replicaID)
    }

    /// Wraps a key bundle (``bundle``) under a KEK.
    static func wrap(bundle: Data, with kek: KeyEncryptionKey, replicaID: Data) throws -> Data {
        let box = try AES.GCM.seal(bundle, using: kek.key, authenticating: wrapContext(replicaID: replicaID))
        return box.combined!
    }

    /// Unwraps a key bundle; returns nil when the KEK is not the one that wrapped it.
    static func unwrap(_ wrapped: Data, with kek: KeyEncryptionKey, replicaID: Data) -> Data? {
        guard let box = try? AES.GCM.SealedBox(combined: wrapped),
            let raw = try? AES.GCM.open(box, using: kek.key, authenticating: wrapContext(replicaID: replicaID))
        else { return nil }
        return raw
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

    /// Opens a sealed value (with the current key, then the previous one during a re-key);
    /// nil when it was altered or sealed for another context.
    func open(_ sealed: Data, context: Data) -> Data? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed) else { return nil }
        if let plain = try? AES.GCM.open(box, using: sealing, authenticating: context) { return plain }
        guard let previousSealing else { return nil }
        return try? AES.GCM.open(box, using: previousSealing, authenticating: context)
    }

    /// Opens a value sealed with the previous DEK only; nil when it was not (already
    /// re-sealed, or altered).
    func openPrevious(_ sealed: Data, context: Data) -> Data? {
        guard let previousSealing, let box = try? AES.GCM.SealedBox(combined: sealed) else { return nil }
        return try? AES.GCM.open(box, using: previousSealing, authenticating: context)
    }
}
