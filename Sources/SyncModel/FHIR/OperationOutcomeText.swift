public import Foundation

/// A one-line reading of an OperationOutcome, for operators (`syncctl outbox`).
public enum OperationOutcomeText {
    /// `severity code: diagnostics (expression)` of each issue, joined with `; `, at most
    /// `limit` characters; a plain description when the body is not an OperationOutcome.
    public static func summary(_ data: Data, limit: Int = 400) -> String {
        guard case .object(let object)? = try? JSONValue(data: data),
            object["resourceType"] == .string("OperationOutcome"), let issues = object["issue"]?.arrayValue
        else { return data.isEmpty ? "no details" : "no OperationOutcome" }
        let parts = issues.map { issue -> String in
            var text = [issue["severity"]?.stringValue, issue["code"]?.stringValue].compactMap { $0 }.joined(
                separator: " ")
            let detail = issue["diagnostics"]?.stringValue ?? issue["details"]?["text"]?.stringValue
            if let detail { text += (text.isEmpty ? "" : ": ") + detail }
            if let expression = issue["expression"]?.arrayValue?.compactMap(\.stringValue), !expression.isEmpty {
                text += " (\(expression.joined(separator: ", ")))"
            }
            return text
        }
        // Server text goes to logs and terminals: no control characters (no forged log lines).
        let joined = String(
            String.UnicodeScalarView(
                parts.filter { !$0.isEmpty }.joined(separator: "; ").unicodeScalars.filter {
                    !CharacterSet.controlCharacters.contains($0)
                }))
        if joined.isEmpty { return "no details" }
        return joined.count > limit ? String(joined.prefix(limit - 1)) + "…" : joined
    }

    /// A reason as staff (not administrators) see it: the HTTP status and the issues'
    /// severity and code, without the EHR's own text, which may echo record content.
    /// `HTTP 422: error invalid: Patient "Durand" …` → `HTTP 422: error invalid (details: an administrator)`.
    public static func withoutServerText(_ reason: String) -> String {
        guard reason.hasPrefix("HTTP "), let first = reason.firstIndex(of: ":") else { return reason }
        let rest = reason[reason.index(after: first)...]
        guard let second = rest.firstIndex(of: ":") else { return reason }
        return String(reason[..<second]) + " (details: ask an administrator)"
    }
}
