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
        let joined = parts.filter { !$0.isEmpty }.joined(separator: "; ")
        if joined.isEmpty { return "no details" }
        return joined.count > limit ? String(joined.prefix(limit - 1)) + "…" : joined
    }
}
