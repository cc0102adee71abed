// bench-ingest: ingest of a practice into the encrypted replica, against the same rows
// into a plaintext SQLite table with the same indexes, in the same run.
//
// Usage: IngestBenchmark [--set medium] [--runs 3] [--batch 1000]
// Prints `name: value unit` lines; the headline ratio comes last.
import Foundation
import GRDB
import SyncModel
import SyncStore

struct Options {
    var set = "medium"
    var runs = 3
    var batch = 1000

    static func parse() -> Options {
        var options = Options()
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--set": options.set = args.next() ?? options.set
            case "--runs": options.runs = Int(args.next() ?? "") ?? options.runs
            case "--batch": options.batch = Int(args.next() ?? "") ?? options.batch
            default:
                FileHandle.standardError.write(Data("unknown argument \(arg)\n".utf8))
                exit(64)
            }
        }
        return options
    }
}

let options = Options.parse()
let set = options.set
let runs = options.runs
let batch = options.batch

let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let dataRoot =
    ProcessInfo.processInfo.environment["EHR_SYNC_FHIR_DATA"]
    ?? repo.deletingLastPathComponent().appendingPathComponent("shared/fhir-data").path
let folder = dataRoot + "/" + set

func loadLines() throws -> [Data] {
    let order = try String(contentsOfFile: folder + "/load_order.txt", encoding: .utf8)
        .split(whereSeparator: \.isNewline).map(String.init)
    var lines: [Data] = []
    for type in order {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(type).ndjson"))
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty { lines.append(Data(line)) }
    }
    return lines
}

func tempDir() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bench-ingest-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// The encrypted replica, as the daemon uses it; `digests: false` drops the row-set
/// triggers first, to measure what keeping the row-set digests costs.
func encryptedRun(_ lines: [Data], digests: Bool = true) throws -> Double {
    let dir = try tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let kek = KeyEncryptionKey.generate()
    if !digests {
        try Replica.open(directory: dir, kek: kek, keySource: "benchmark key").close()
        try DatabaseQueue(path: dir + "/" + Replica.fileName).write { db in
            for name in try String.fetchAll(
                db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rowset%'")
            {
                try db.execute(sql: "DROP TRIGGER \(name)")
            }
        }
    }
    let replica = try Replica.open(directory: dir, kek: kek, keySource: "benchmark key")
    defer { replica.close() }
    let elapsed = try seconds {
        var start = 0
        while start < lines.count {
            let end = min(start + batch, lines.count)
            let outcome = try replica.records.apply(Array(lines[start..<end]))
            precondition(outcome.inserted == end - start)
            start = end
        }
    }
    let stored = try replica.records.count()
    precondition(stored == lines.count)
    return elapsed
}

/// The baseline: the same rows, parsed the same way, into a plaintext table with the same
/// indexes, same pragmas and same batch transactions.
func plaintextRun(_ lines: [Data]) throws -> Double {
    let dir = try tempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;") }
    let pool = try DatabasePool(path: dir + "/plain.sqlite", configuration: config)
    try pool.write { db in
        try db.execute(
            sql: """
                CREATE TABLE resource (
                    row INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, version_id TEXT,
                    last_updated TEXT, content_hash BLOB NOT NULL, size INTEGER NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0, patient TEXT, body BLOB NOT NULL, UNIQUE (type, id));
                CREATE INDEX resource_by_patient ON resource (patient, type) WHERE patient IS NOT NULL;
                """)
    }
    let elapsed = try seconds {
        var start = 0
        while start < lines.count {
            let end = min(start + batch, lines.count)
            let envelopes = try lines[start..<end].map { try ResourceEnvelope.parse($0) }
            try pool.write { db in
                let select = try db.cachedStatement(
                    sql: "SELECT row, version_id FROM resource WHERE type = ? AND id = ?")
                let insert = try db.cachedStatement(
                    sql: """
                        INSERT INTO resource (type, id, version_id, last_updated, content_hash, size, deleted, patient, body)
                        VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (type, id) DO NOTHING
                        """)
                for (offset, env) in envelopes.enumerated() {
                    let bytes = lines[start + offset]
                    // Same statement flow as the replica: insert first, look up only on conflict.
                    try insert.execute(arguments: [
                        env.resourceType, env.id, env.versionId, env.lastUpdated, Data(count: 32), bytes.count,
                        env.patientID, bytes,
                    ])
                    if db.changesCount == 0 {
                        _ = try Row.fetchOne(select, arguments: [env.resourceType, env.id])
                    }
                }
            }
            start = end
        }
    }
    try pool.close()
    return elapsed
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

let lines = try loadLines()
print("set: \(set) (\(lines.count) resources), runs: \(runs), batch: \(batch)")
var encrypted: [Double] = []
var plaintext: [Double] = []
var undigested: [Double] = []
for run in 1...runs {
    // Rotate the order so drift on a noisy machine hits every side alike.
    let sides: [() throws -> Void] = [
        { encrypted.append(try encryptedRun(lines)) },
        { plaintext.append(try plaintextRun(lines)) },
        { undigested.append(try encryptedRun(lines, digests: false)) },
    ]
    for i in 0..<sides.count { try sides[(i + run) % sides.count]() }
    print(
        "run \(run): encrypted \(String(format: "%.2f", encrypted.last!)) s, plaintext \(String(format: "%.2f", plaintext.last!)) s, "
            + "encrypted without row-set digests \(String(format: "%.2f", undigested.last!)) s"
    )
}
let ingestRate = Double(lines.count) / median(encrypted)
let plainRate = Double(lines.count) / median(plaintext)
let undigestedRate = Double(lines.count) / median(undigested)
print("ingest: \(Int(ingestRate)) resources/s")
print("plaintext: \(Int(plainRate)) resources/s")
print("ingest without row-set digests: \(Int(undigestedRate)) resources/s")
print("row-set digest cost ratio: \(String(format: "%.2f", ingestRate / undigestedRate))")
print("ingest ratio vs plaintext sqlite: \(String(format: "%.2f", ingestRate / plainRate))")
