/// A token criterion: `code`, `system|code`, `system|` or `|code`.
public struct TokenCriterion: Sendable, Equatable {
    public var system: String?
    public var code: String?

    public static func parse(_ text: String) -> TokenCriterion {
        guard let bar = text.firstIndex(of: "|") else { return TokenCriterion(system: nil, code: text) }
        let system = String(text[..<bar])
        let code = String(text[text.index(after: bar)...])
        return TokenCriterion(system: system, code: code.isEmpty ? nil : code)
    }

    /// Comma-separated alternatives.
    public static func parseList(_ text: String) -> [TokenCriterion] {
        text.split(separator: ",").map { parse(String($0)) }
    }

    /// Whether a coding (system, code) matches; `system` empty string means "no system".
    public func matches(system codingSystem: String?, code codingCode: String?) -> Bool {
        if let system {
            if system.isEmpty ? codingSystem != nil : codingSystem != system { return false }
        }
        if let code, code != codingCode { return false }
        return true
    }
}

/// A date criterion with its prefix: `ge2024-01-01`, `2024-03`, `lt2025-01-01T10:00:00Z`.
///
/// Values are compared as ranges at their precision (a year is the whole year), without
/// time zone arithmetic: the local copy compares what the record says.
public struct DateCriterion: Sendable, Equatable {
    public enum Prefix: String, Sendable, Equatable, CaseIterable {
        case eq, ne, gt, lt, ge, le, sa, eb
    }

    public var prefix: Prefix
    public var range: DateRange

    public static func parse(_ text: String, parameter: String) throws(SearchError) -> DateCriterion {
        var prefix = Prefix.eq
        var rest = Substring(text)
        if let p = Prefix.allCases.first(where: { text.hasPrefix($0.rawValue) }) {
            prefix = p
            rest = rest.dropFirst(2)
        }
        guard let range = DateRange(String(rest)) else {
            throw .invalid(parameter: parameter, reason: "expected a date like 2024, 2024-03, 2024-03-05 or an instant")
        }
        return DateCriterion(prefix: prefix, range: range)
    }

    public func matches(_ value: DateRange) -> Bool {
        switch prefix {
        case .eq: value.low >= range.low && value.high <= range.high
        case .ne: !(value.low >= range.low && value.high <= range.high)
        case .gt, .sa: value.high > range.high
        case .lt, .eb: value.low < range.low
        case .ge: value.high > range.low
        case .le: value.low < range.high
        }
    }
}

/// A half-open interval of time `[low, high)` as sortable text `YYYY-MM-DDTHH:MM:SS`.
public struct DateRange: Sendable, Equatable {
    public var low: String
    public var high: String

    public init(low: String, high: String) {
        self.low = low
        self.high = high
    }

    /// A FHIR date, dateTime or instant at its precision; nil when malformed.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        func digits(_ r: Range<Int>) -> Int? {
            guard r.upperBound <= bytes.count else { return nil }
            var n = 0
            for b in bytes[r] {
                guard b >= 48 && b <= 57 else { return nil }
                n = n * 10 + Int(b - 48)
            }
            return n
        }
        guard let year = digits(0..<4) else { return nil }
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        switch bytes.count {
        case 4:
            low = "\(pad(year, 4))-01-01T00:00:00"
            high = "\(pad(year + 1, 4))-01-01T00:00:00"
        case 7:
            guard bytes[4] == 45, let month = digits(5..<7), (1...12).contains(month) else { return nil }
            low = "\(pad(year, 4))-\(pad(month, 2))-01T00:00:00"
            high =
                month == 12
                ? "\(pad(year + 1, 4))-01-01T00:00:00" : "\(pad(year, 4))-\(pad(month + 1, 2))-01T00:00:00"
        default:
            guard bytes.count >= 10, bytes[4] == 45, bytes[7] == 45, let month = digits(5..<7),
                let day = digits(8..<10), (1...12).contains(month), (1...31).contains(day)
            else { return nil }
            let date = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
            if bytes.count == 10 {
                low = "\(date)T00:00:00"
                high = "\(date)T23:59:60"
                return
            }
            guard bytes.count >= 19, bytes[10] == 84, let h = digits(11..<13), let m = digits(14..<16),
                let s = digits(17..<19)
            else { return nil }
            low = "\(date)T\(pad(h, 2)):\(pad(m, 2)):\(pad(s, 2))"
            high = low + "~"  // just after every value of that second
        }
    }

    /// A FHIR Period's range (open ends stretch to the far past or future).
    public init?(start: String?, end: String?) {
        guard start != nil || end != nil else { return nil }
        let s = start.flatMap(DateRange.init)
        let e = end.flatMap(DateRange.init)
        low = s?.low ?? "0000-01-01T00:00:00"
        high = e?.high ?? "9999-12-31T23:59:60"
    }
}
