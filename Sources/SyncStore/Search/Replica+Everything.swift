import Foundation
import GRDB
public import SyncModel

extension Replica {
    /// Everything about one patient (`Patient/[id]/$everything`): the Patient, its
    /// compartment, and the practitioners, organizations, locations, medications and devices
    /// they reference; nil when the patient is unknown.
    ///
    /// - Parameter types: only these types of the compartment and of the referenced
    ///   resources (the Patient always comes first); nil for all.
    ///
    /// Without open local changes (the usual case) the stored bytes are served as they are:
    /// each row is opened once, its id and references read from the outline sealed with it
    /// (worked out at ingest), and the referenced resources are fetched one lookup each.
    public func everything(patientID: String, types: Set<String>? = nil) throws(ReplicaError)
        -> [SearchBundle.Entry]?
    {
        let overlayTypes = try openOverlayTypes()
        if !overlayTypes.isEmpty {
            return try everythingOverlaid(patientID: patientID, types: types, overlayTypes: overlayTypes)
        }
        guard let patient = try records.resource(type: "Patient", id: patientID) else { return nil }
        var result = [SearchBundle.Entry(resourceType: "Patient", id: patientID, json: patient.json)]
        var seen: Set<String> = ["Patient/\(patientID)"]
        // Each distinct reference once (a record references the same practitioner and
        // organization from hundreds of resources).
        var referenced: [String] = []
        var distinct: Set<String> = []
        let pbid = blind(type: "Patient", id: patientID)
        try read { db in
            var args: [any DatabaseValueConvertible] = [pbid]
            args += (types ?? []).sorted().map { $0 as any DatabaseValueConvertible }
            let cursor = try Row.fetchCursor(
                try db.cachedStatement(sql: Self.compartmentSQL(typeCount: types?.count)),
                arguments: StatementArguments(args))
            while let row = try cursor.next() {
                let (entry, references) = try openWithReferences(row, referenceTypes: ServerCapabilities.referenceTypes)
                // Rows are unique by type and id; only the reference types can come again below.
                if ServerCapabilities.referenceTypes.contains(entry.resourceType) {
                    seen.insert("\(entry.resourceType)/\(entry.id)")
                }
                result.append(entry)
                for reference in references where distinct.insert(reference).inserted {
                    referenced.append(reference)
                }
            }
        }
        result += try referencedResources(referenced, seen: &seen, types: types)
        return result
    }

    /// A patient's live records other than the Patient (of `typeCount` types given as
    /// arguments after the blinded patient, or all), in the patient index's order (no sort).
    static func compartmentSQL(typeCount: Int?) -> String {
        var sql =
            "SELECT \(ResourceStore.columns) FROM resource WHERE patient = ? AND deleted = 0 AND type <> 'Patient'"
        if let typeCount { sql += " AND type IN (\(Array(repeating: "?", count: typeCount).joined(separator: ",")))" }
        return sql + " ORDER BY type, row"
    }

    /// Opens one row with its id and references: from the outline sealed with its JSON, or,
    /// for a row stored before outlines, by scanning the JSON. The seal's associated data
    /// binds the row's type and blinded id, so the body cannot have come from another row.
    /// (The sealed bytes are read in place, not copied out of SQLite first.)
    func openWithReferences(_ row: Row, referenceTypes: Set<String>) throws -> (SearchBundle.Entry, [String]) {
        let rowID: Int64 = row[0]
        let type: String = row[1]
        let bid: Data = row[2]
        let versionId: String? = row[3]
        let context = ResourceStore.context(type: type, bid: bid, versionId: versionId, deleted: (row[6] as Int64) != 0)
        guard let body = try row.withUnsafeData(atIndex: 7, { $0.flatMap { keys.open($0, context: context) } }),
            let parts = ResourceOutline.split(body)
        else { throw ReplicaError.integrity(resourceType: type, row: rowID) }
        let (json, encoded) = parts
        if let outline = encoded?.withUnsafeBytes({ ResourceOutline.idAndReferences(encoded: $0, to: referenceTypes) })
        {
            return (SearchBundle.Entry(resourceType: type, id: outline.id, json: json), outline.references)
        }
        guard
            let scan = try? json.withUnsafeBytes({ raw in
                try JSONSlicer.identityAndReferences(ofRaw: raw, referenceTypes: referenceTypes)
            }),
            let id = scan.id, scan.resourceType == type
        else { throw ReplicaError.integrity(resourceType: type, row: rowID) }
        return (SearchBundle.Entry(resourceType: type, id: id, json: json), scan.references)
    }

    /// The live resources of the reference types named by `references` (relative `Type/id`
    /// references), each once, in the order first referenced.
    func referencedResources(_ references: [String], seen: inout Set<String>, types: Set<String>?)
        throws(ReplicaError) -> [SearchBundle.Entry]
    {
        var order: [String] = []
        var wanted: [String: [Data: String]] = [:]
        for reference in references {
            guard let key = ResourceReferences.key(reference), seen.insert(key).inserted,
                let slash = key.firstIndex(of: "/")
            else { continue }
            let type = String(key[..<slash])
            guard ServerCapabilities.referenceTypes.contains(type), types?.contains(type) ?? true else { continue }
            let id = String(key[key.index(after: slash)...])
            wanted[type, default: [:]][blind(type: type, id: id)] = id
            order.append(key)
        }
        guard !order.isEmpty else { return [] }
        var found: [String: SearchBundle.Entry] = [:]
        try read { db in
            // One cached statement stepped per resource: preparing an `IN (…)` list of
            // hundreds of placeholders on every request cost more than the lookups.
            let statement = try db.cachedStatement(
                sql: "SELECT \(ResourceStore.columns) FROM resource WHERE type = ? AND bid = ? AND deleted = 0")
            for (type, ids) in wanted {
                for (bid, id) in ids {
                    guard let row = try Row.fetchOne(statement, arguments: [type, bid]) else { continue }
                    let stored = try records.decode(row, id: id)
                    found["\(type)/\(id)"] = SearchBundle.Entry(resourceType: type, id: id, json: stored.json)
                }
            }
        }
        return order.compactMap { found[$0] }
    }

    /// `$everything` when local changes are open: the mirror with them laid over (pending
    /// creates and edits included and tagged, local deletions left out).
    func everythingOverlaid(patientID: String, types: Set<String>?, overlayTypes: [String]) throws(ReplicaError)
        -> [SearchBundle.Entry]?
    {
        guard let patient = try localViewData(type: "Patient", id: patientID) else { return nil }
        var result = [SearchBundle.Entry(resourceType: "Patient", id: patientID, json: patient)]
        var seen: Set<String> = ["Patient/\(patientID)"]
        var referenced: [String] = []
        var compartment = try records.resources(forPatient: patientID, types: types.map { Array($0) }).filter {
            $0.resourceType != "Patient"
        }.compactMap { stored -> JSONObject? in
            guard case .object(let o)? = try? JSONValue(data: stored.json) else { return nil }
            return o
        }
        for type in overlayTypes where type != "Patient" && (types?.contains(type) ?? true) {
            let overlay = try localOverlay(type: type)
            compartment = apply(overlay, to: compartment, type: type) { object in
                Self.references(object, patient: patientID)
            }
        }
        for object in compartment {
            guard let type = object["resourceType"]?.stringValue, let id = object["id"]?.stringValue,
                seen.insert("\(type)/\(id)").inserted
            else { continue }
            result.append(SearchBundle.Entry(resourceType: type, id: id, json: JSONValue.object(object).data()))
            referenced += ResourceReferences.collect(.object(object))
        }
        for key in referenced where seen.insert(key).inserted {
            let parts = key.split(separator: "/")
            let type = String(parts[0])
            guard ServerCapabilities.referenceTypes.contains(type), types?.contains(type) ?? true else { continue }
            if let data = try localViewData(type: type, id: String(parts[1])) {
                result.append(SearchBundle.Entry(resourceType: type, id: String(parts[1]), json: data))
            }
        }
        return result
    }
}
