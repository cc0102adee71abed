import Foundation
import GRDB
import SyncModel
import Synchronization

/// The replica's one SQLite database, shared by its stores (``ResourceStore``,
/// ``HeldChangeStore``, ``OutboxStore``, ``AuditTrail``, ``AccountStore``, ``SyncStateStore``,
/// ``AttachmentStore``): the pool (WAL,
/// one writer, concurrent readers), the key ring, and the kinds of transaction they use.
/// Stores that must change together (an account and its audit line) share one transaction by
/// taking the `Database` of the write they run in.
final class ReplicaDatabase: Sendable {
    let path: String
    let pool: DatabasePool
    private let ring: Mutex<KeyRing>
    /// The key the row-set triggers' SQL functions use (``RowSet``), kept with the ring.
    let integrityKey: RowSet.KeyBox
    /// Largest resource accepted, in bytes.
    let sizeLimit: Int

    init(path: String, pool: DatabasePool, keys: KeyRing, integrityKey: RowSet.KeyBox, sizeLimit: Int) {
        self.path = path
        self.pool = pool
        self.ring = Mutex(keys)
        self.integrityKey = integrityKey
        self.sizeLimit = sizeLimit
        integrityKey.set(keys.integrity)
    }

    /// The key ring now. A re-key replaces it (``replaceKeys(_:)``) inside the write
    /// transaction that re-seals what must change at once; read it inside a transaction for
    /// what a write seals.
    var keys: KeyRing { ring.withLock { $0 } }

    /// Puts a new ring in place (a re-key starting or finishing), the row-set key with it.
    func replaceKeys(_ keys: KeyRing) {
        ring.withLock { $0 = keys }
        integrityKey.set(keys.integrity)
    }

    func blind(type: String, id: String) -> Data { keys.blind(type: type, id: id) }

    func write<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T {
        do {
            return try pool.write(body)
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw ReplicaError.from(error)
        }
    }

    /// A transaction committed with `synchronous = FULL`: the WAL is fsync'd before this
    /// returns, so the change survives a power cut. For what exists nowhere else: local
    /// changes, audit records, accounts, operator decisions, keys. (GRDB opens the writer with
    /// `synchronous = NORMAL`, crash-safe but not power-cut-safe, which is kept for what can be
    /// fetched again from the EHR: pulled records, replay bookkeeping.)
    func durableWrite<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T {
        do {
            return try durablePoolWrite(body)
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw ReplicaError.from(error)
        }
    }

    /// ``durableWrite(_:)`` passing the body's errors through unchanged.
    func durablePoolWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL") }
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T {
        do {
            return try pool.read(body)
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw ReplicaError.from(error)
        }
    }
}

/// A store over the shared database: the database's helpers under their short names.
protocol ReplicaDatabaseUser {
    var database: ReplicaDatabase { get }
}

extension ReplicaDatabaseUser {
    var pool: DatabasePool { database.pool }
    var keys: KeyRing { database.keys }
    var sizeLimit: Int { database.sizeLimit }

    /// Blind index of a resource identity, as stored in the `bid` and `patient` columns.
    func blind(type: String, id: String) -> Data { database.blind(type: type, id: id) }

    func write<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T { try database.write(body) }

    func durableWrite<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T {
        try database.durableWrite(body)
    }

    func durablePoolWrite<T>(_ body: (Database) throws -> T) throws -> T { try database.durablePoolWrite(body) }

    func read<T>(_ body: (Database) throws -> T) throws(ReplicaError) -> T { try database.read(body) }
}
