public import Foundation
import GRDB
public import SyncModel

/// One page of a local search.
public struct SearchPage: Sendable {
    /// Matches in all (for `Bundle.total`).
    public var total: Int
    /// This page's matches, as JSON resources (local changes tagged pending).
    public var matches: [SearchBundle.Entry]
    /// Resources pulled in by `_include`.
    public var included: [SearchBundle.Entry]
}

extension Replica {
    /// Runs a search on the local view: the mirrored records with queued local changes laid
    /// over them (pending creates and edits included, local deletions left out).
    public func search(_ request: SearchRequest) throws(ReplicaError) -> SearchPage {
        let overlay = try localOverlay(type: request.resourceType)
        var candidates: [JSONObject]
        if request.resourceType == "Patient" {
            candidates = try patientCandidates(request, overlay: overlay)
        } else {
            candidates = try clinicalCandidates(request, overlay: overlay)
        }
        candidates = candidates.filter { object in request.criteria.allSatisfy { SearchMatch.matches(object, $0) } }
        sort(&candidates, by: request.sort)
        let page = Array(candidates.dropFirst(request.offset).prefix(request.count))
        var included: [SearchBundle.Entry] = []
        var seen = Set<String>()
        for include in request.includes where include.sourceType == request.resourceType {
            for object in page {
                for key in SearchMatch.includeReferences(object, parameter: include.parameter)
                where seen.insert(key).inserted {
                    let parts = key.split(separator: "/")
                    let (type, id) = (String(parts[0]), String(parts[1]))
                    if let data = try localViewData(type: type, id: id) {
                        included.append(SearchBundle.Entry(resourceType: type, id: id, json: data))
                    }
                }
            }
        }
        let matches = page.map { object in
            SearchBundle.Entry(
                resourceType: object["resourceType"]?.stringValue ?? request.resourceType,
                id: object["id"]?.stringValue ?? "", json: JSONValue.object(object).data())
        }
        return SearchPage(total: candidates.count, matches: matches, included: included)
    }

    // MARK: Candidates

    func patientCandidates(_ request: SearchRequest, overlay: LocalOverlay) throws(ReplicaError) -> [JSONObject] {
        var query = PatientQuery()
        var ids: [String]?
        for criterion in request.criteria {
            switch criterion {
            case .name(let v): query.name = v
            case .family(let v): query.family = v
            case .given(let v): query.given = v
            case .identifier(let v): query.identifier = v
            case .gender(let v): query.gender = v
            case .birthDate(let c): query.birthDateCriterion = c
            case .id(let list): ids = list
            default: break
            }
        }
        var matched = records.patients.withLock { $0.search(query) }
        if let ids { matched = matched.filter(ids.contains) }
        var result: [JSONObject] = []
        for id in matched where !overlay.hidden.contains(id) {
            if let stored = try records.resource(type: "Patient", id: id),
                case .object(let o)? = try? JSONValue(data: stored.json)
            {
                result.append(o)
            }
        }
        // Local creates and edits of Patients are matched with an index of their own.
        var local = PatientIndex()
        var byID: [String: JSONObject] = [:]
        for object in overlay.visible {
            guard let id = object["id"]?.stringValue else { continue }
            local.upsert(bid: Data(id.utf8), json: JSONValue.object(object).data())
            byID[id] = object
        }
        for id in local.search(query) where ids?.contains(id) ?? true {
            if let object = byID[id] { result.append(object) }
        }
        return result
    }

    func clinicalCandidates(_ request: SearchRequest, overlay: LocalOverlay) throws(ReplicaError) -> [JSONObject] {
        let type = request.resourceType
        var patientID: String?
        var ids: [String]?
        for criterion in request.criteria {
            if case .patient(let id) = criterion { patientID = id }
            if case .id(let list) = criterion { ids = list }
        }
        var stored: [StoredResource] = []
        if let ids {
            for id in ids { if let s = try records.resource(type: type, id: id) { stored.append(s) } }
        } else if let patientID {
            stored = try records.resources(forPatient: patientID, types: [type])
        } else {
            try records.forEachResource(type: type) { stored.append($0) }
        }
        let objects = stored.compactMap { s -> JSONObject? in
            guard case .object(let o)? = try? JSONValue(data: s.json) else { return nil }
            return o
        }
        return apply(overlay, to: objects, type: type) { object in
            guard let patientID else { return true }
            return Self.references(object, patient: patientID)
        }
    }

    static func references(_ object: JSONObject, patient id: String) -> Bool {
        ["subject", "patient"].contains { member in
            object[member]?["reference"]?.stringValue.flatMap(ResourceReferences.key) == "Patient/\(id)"
        }
    }

    func sort(_ objects: inout [JSONObject], by key: SearchRequest.SortKey) {
        func id(_ o: JSONObject) -> String { o["id"]?.stringValue ?? "" }
        func updated(_ o: JSONObject) -> String { o["meta"]?["lastUpdated"]?.stringValue ?? "" }
        func date(_ o: JSONObject) -> String { SearchMatch.dateRange(o)?.low ?? "" }
        switch key {
        case .id: objects.sort { id($0) < id($1) }
        case .date: objects.sort { (date($0), id($0)) < (date($1), id($1)) }
        case .dateDescending: objects.sort { (date($0), id($0)) > (date($1), id($1)) }
        case .lastUpdated: objects.sort { (updated($0), id($0)) < (updated($1), id($1)) }
        case .lastUpdatedDescending: objects.sort { (updated($0), id($0)) > (updated($1), id($1)) }
        }
    }

    // MARK: Local overlay

    /// Open local changes of one type: what they hide of the mirror, and what they show.
    struct LocalOverlay {
        /// Server ids replaced or deleted locally.
        var hidden: Set<String> = []
        /// Local versions (tagged pending), creates included.
        var visible: [JSONObject] = []
    }

    func openOverlayTypes() throws(ReplicaError) -> [String] {
        try read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT type FROM outbox WHERE state IN \(OutboxStore.openStates)")
        }
    }

    func localOverlay(type: String) throws(ReplicaError) -> LocalOverlay {
        let entries = try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, type, bid, op, state, updated_at, body FROM outbox
                    WHERE type = ? AND state IN \(OutboxStore.openStates) ORDER BY seq
                    """, arguments: [type]
            ).map(outbox.decodeEntry)
        }
        var overlay = LocalOverlay()
        var latest: [String: OutboxEntry] = [:]
        for entry in entries { latest[entry.localID] = entry }
        for entry in latest.values.sorted(by: { $0.seq < $1.seq }) {
            overlay.hidden.insert(entry.localID)
            if let id = entry.payload.serverID { overlay.hidden.insert(id) }
            guard entry.operation != .delete, let body = entry.payload.resource,
                case .object(let object)? = try? JSONValue(data: body)
            else { continue }
            overlay.visible.append(ResourceEdits.tagged(object, state: entry.state))
        }
        return overlay
    }

    func apply(_ overlay: LocalOverlay, to objects: [JSONObject], type: String, include: (JSONObject) -> Bool)
        -> [JSONObject]
    {
        guard !overlay.hidden.isEmpty || !overlay.visible.isEmpty else { return objects }
        var result = objects.filter { o in !overlay.hidden.contains(o["id"]?.stringValue ?? "") }
        result += overlay.visible.filter(include)
        return result
    }

    /// The local view of one resource as JSON, or nil when absent or deleted.
    public func localViewData(type: String, id: String) throws(ReplicaError) -> Data? {
        switch try outbox.localView(type: type, id: id) {
        case .pending(let data, _, _): data
        case .server(let stored): stored.json
        case .deletedLocally, .notFound: nil
        }
    }
}
