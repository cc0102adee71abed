public import Foundation

/// Which patients a per-patient listing asks in one cycle, for servers where every patient
/// costs requests: those that matter now (an appointment today or tomorrow, opened in the
/// viewer within the hour) every cycle, everyone on a slower round. All are asked from the
/// start of the last complete round (minus the overlap), so a patient that becomes one that
/// matters between rounds misses nothing. Pure; the puller keeps the ``State``.
public enum PatientRound {
    /// The last complete round: the server time it started from (a cursor) and the local
    /// time it ran.
    public struct State: Codable, Sendable, Equatable {
        public var since: String
        public var at: Double

        public init(since: String, at: Double) {
            self.since = since
            self.at = at
        }
    }

    public struct Plan: Sendable, Equatable {
        /// Patients to ask, those that matter first.
        public var patients: [String]
        /// Server-time cursor the listings start from.
        public var since: String
        /// Everyone is asked: on success the round state moves to this cycle.
        public var isRound: Bool
    }

    /// - Parameters:
    ///   - cursor: the sync cursor (server time), used before the first round.
    ///   - interval: seconds between rounds (`[sync] patient_round`); 0 = every cycle.
    public static func plan(
        patients: [String], matter: Set<String>, cursor: String, last: State?, now: Double, interval: Double
    ) -> Plan {
        let isRound = last.map { now - $0.at >= interval || now < $0.at } ?? true
        let since = last?.since ?? cursor
        let first = patients.filter(matter.contains)
        guard isRound else { return Plan(patients: first, since: since, isRound: false) }
        return Plan(patients: first + patients.filter { !matter.contains($0) }, since: since, isRound: true)
    }
}

/// Patients opened in the viewer or the local API recently, kept in memory for a bounded time
/// (the puller refreshes them first on per-patient servers).
public struct RecentPatients: Sendable {
    public let keep: Double
    var opened: [String: Double] = [:]

    public init(keep: Double = 3600) { self.keep = keep }

    public mutating func record(_ patient: String, at now: Double) {
        opened[patient] = now
        if opened.count > 4096 { opened = opened.filter { now - $0.value < keep } }
    }

    public func patients(now: Double) -> Set<String> {
        Set(opened.filter { now - $0.value < keep && $0.value <= now + 1 }.keys)
    }
}

extension PatientRound {
    /// The patients of an Appointment (its `participant.actor` references to Patients) when it
    /// starts on one of `days` (`YYYY-MM-DD`, the practice's local dates).
    public static func scheduledPatients(appointment json: Data, days: Set<String>) -> [String] {
        guard let object = try? JSONValue(data: json), let start = object["start"]?.stringValue,
            start.count >= 10, days.contains(String(start.prefix(10)))
        else { return [] }
        if let status = object["status"]?.stringValue, status == "cancelled" || status == "entered-in-error" {
            return []
        }
        return (object["participant"]?.arrayValue ?? []).compactMap { participant in
            guard let reference = participant["actor"]?["reference"]?.stringValue,
                reference.hasPrefix("Patient/")
            else { return nil }
            return String(reference.dropFirst("Patient/".count))
        }
    }
}
