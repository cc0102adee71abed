import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// Plain-text renderings of FHIR datatypes for the viewer's pages (escaping happens where
/// they are placed in HTML).
enum FHIRText {
    /// A CodeableConcept: its text, else the first coding's display, else its code.
    static func concept(_ value: JSONValue?) -> String? {
        guard let value else { return nil }
        if let text = value["text"]?.stringValue, !text.isEmpty { return text }
        for coding in value["coding"]?.arrayValue ?? [] {
            if let display = coding["display"]?.stringValue, !display.isEmpty { return display }
        }
        for coding in value["coding"]?.arrayValue ?? [] {
            if let code = coding["code"]?.stringValue, !code.isEmpty { return code }
        }
        return nil
    }

    /// The first code of a CodeableConcept (e.g. a clinical status).
    static func code(_ value: JSONValue?) -> String? {
        for coding in value?["coding"]?.arrayValue ?? [] {
            if let code = coding["code"]?.stringValue { return code }
        }
        return nil
    }

    /// Whether a CodeableConcept has a coding `system|code`.
    static func hasCoding(_ value: JSONValue?, system: String, code: String) -> Bool {
        (value?["coding"]?.arrayValue ?? []).contains {
            $0["system"]?.stringValue == system && $0["code"]?.stringValue == code
        }
    }

    /// A HumanName: its text, else given names then family; digits Synthea appends are kept.
    static func name(_ value: JSONValue?) -> String? {
        guard let value else { return nil }
        if let text = value["text"]?.stringValue, !text.isEmpty { return text }
        var parts = (value["prefix"]?.arrayValue ?? []).compactMap(\.stringValue)
        parts += (value["given"]?.arrayValue ?? []).compactMap(\.stringValue)
        if let family = value["family"]?.stringValue { parts.append(family) }
        parts += (value["suffix"]?.arrayValue ?? []).compactMap(\.stringValue)
        let joined = parts.joined(separator: " ")
        return joined.isEmpty ? nil : joined
    }

    /// The name to show of a Patient: `official`, else `usual`, else the first.
    static func patientName(_ patient: JSONValue) -> String? {
        let names = patient["name"]?.arrayValue ?? []
        let chosen =
            names.first { $0["use"]?.stringValue == "official" } ?? names.first { $0["use"]?.stringValue == "usual" }
            ?? names.first
        return name(chosen)
    }

    /// A family name for sorting and headings.
    static func familyName(_ patient: JSONValue) -> String? {
        let names = patient["name"]?.arrayValue ?? []
        let chosen = names.first { $0["use"]?.stringValue == "official" } ?? names.first
        return chosen?["family"]?.stringValue
    }

    /// A Reference: its display, else nil (references are not resolved for display).
    static func referenceDisplay(_ value: JSONValue?) -> String? {
        value?["display"]?.stringValue
    }

    /// A Quantity: `72.5 kg` (value text kept as the record has it).
    static func quantity(_ value: JSONValue?, l10n: Localization) -> String? {
        guard let value else { return nil }
        let number = numberText(value["value"]).map(l10n.number)
        let unit = value["unit"]?.stringValue ?? value["code"]?.stringValue
        let comparator = value["comparator"]?.stringValue ?? ""
        switch (number, unit) {
        case (let n?, let u?): return "\(comparator)\(n) \(u)"
        case (let n?, nil): return comparator + n
        default: return nil
        }
    }

    static func numberText(_ value: JSONValue?) -> String? {
        if case .number(let text)? = value { return text }
        return nil
    }

    static func number(_ value: JSONValue?) -> Double? {
        numberText(value).flatMap(Double.init)
    }

    /// An Observation's (or a component's) `value[x]` as text.
    static func observationValue(_ object: JSONValue, l10n: Localization) -> String? {
        if let q = quantity(object["valueQuantity"], l10n: l10n) { return q }
        if let c = concept(object["valueCodeableConcept"]) { return c }
        if let s = object["valueString"]?.stringValue { return shortened(s) }
        if case .bool(let b)? = object["valueBoolean"] { return b ? "✓" : "✗" }
        if let n = numberText(object["valueInteger"]) { return n }
        if let range = object["valueRange"] {
            let low = quantity(range["low"], l10n: l10n) ?? ""
            let high = quantity(range["high"], l10n: l10n) ?? ""
            return "\(low)–\(high)"
        }
        if let ratio = object["valueRatio"] {
            return
                "\(quantity(ratio["numerator"], l10n: l10n) ?? "?")/\(quantity(ratio["denominator"], l10n: l10n) ?? "?")"
        }
        if let dt = object["valueDateTime"]?.stringValue { return l10n.date(dt) }
        return nil
    }

    /// Text cut at `limit` characters (with an ellipsis), for table cells.
    static func shortened(_ text: String, limit: Int = 160) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }

    /// An Observation's first reference range: its text, else `low–high unit`.
    static func referenceRange(_ object: JSONValue, l10n: Localization) -> String? {
        guard let range = object["referenceRange"]?.arrayValue?.first else { return nil }
        if let text = range["text"]?.stringValue, !text.isEmpty { return text }
        let low = numberText(range["low"]?["value"]).map(l10n.number)
        let high = numberText(range["high"]?["value"]).map(l10n.number)
        let unit = range["high"]?["unit"]?.stringValue ?? range["low"]?["unit"]?.stringValue
        let bounds: String
        switch (low, high) {
        case (let l?, let h?): bounds = "\(l)–\(h)"
        case (let l?, nil): bounds = "≥ \(l)"
        case (nil, let h?): bounds = "≤ \(h)"
        default: return nil
        }
        return unit.map { "\(bounds) \($0)" } ?? bounds
    }

    /// `H` or `L` from the interpretation, else from the value against the first range.
    static func flag(_ object: JSONValue) -> String? {
        for interpretation in object["interpretation"]?.arrayValue ?? [] {
            switch code(interpretation) {
            case "H", "HH", "HU", ">": return "H"
            case "L", "LL", "LU", "<": return "L"
            case "A", "AA": return "A"
            default: continue
            }
        }
        guard let value = number(object["valueQuantity"]?["value"]),
            let range = object["referenceRange"]?.arrayValue?.first
        else { return nil }
        if let high = number(range["high"]?["value"]), value > high { return "H" }
        if let low = number(range["low"]?["value"]), value < low { return "L" }
        return nil
    }

    /// The date a clinical record is about: `effective[x]`, `onset[x]`, `occurrence[x]`,
    /// `period.start`, `authoredOn`, `recordedDate`, `date`, `issued`.
    static func clinicalDate(_ object: JSONValue) -> String? {
        for member in [
            "effectiveDateTime", "effectiveInstant", "occurrenceDateTime", "onsetDateTime", "authoredOn",
            "recordedDate",
            "date", "issued",
        ] {
            if let text = object[member]?.stringValue { return text }
        }
        for member in ["effectivePeriod", "period", "onsetPeriod"] {
            if let start = object[member]?["start"]?.stringValue { return start }
        }
        return nil
    }
}
