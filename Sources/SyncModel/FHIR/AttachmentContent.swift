public import Foundation

/// An attachment as the EHR serves it. A `Binary/[id]` read may answer with the bytes
/// themselves (asked with the attachment's own content type) or with a FHIR Binary resource
/// whose `data` holds them (servers that answer every read in FHIR JSON, or when asked with a
/// FHIR type); both give the same stored bytes.
public enum AttachmentContent {
    /// The `Accept` header for an attachment: its declared content type, then FHIR JSON (so a
    /// server that only serves Binary resources still answers), then anything.
    public static func accept(contentType: String?) -> String {
        let declared = contentType.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        guard let declared, !declared.contains(","), !declared.contains("\n"), !declared.contains("\r") else {
            return "*/*"
        }
        if isFHIRJSON(declared) { return declared }
        return "\(declared), application/fhir+json;q=0.5, */*;q=0.1"
    }

    /// The attachment's bytes from an answer: a Binary resource's decoded `data` when the
    /// answer is one (and the attachment itself was not FHIR JSON), else the body as it is.
    /// Nil when the answer is a Binary resource without valid `data`.
    public static func bytes(body: Data, responseContentType: String?, declaredContentType: String?) -> Data? {
        guard let type = responseContentType, isFHIRJSON(type) else { return body }
        if let declared = declaredContentType, isFHIRJSON(declared) { return body }
        guard let value = try? JSONValue(data: body), value["resourceType"]?.stringValue == "Binary" else {
            return body
        }
        guard let data = value["data"]?.stringValue else { return Data() }
        return Data(base64Encoded: data, options: .ignoreUnknownCharacters)
    }

    static func isFHIRJSON(_ type: String) -> Bool {
        let media = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return media == "application/fhir+json" || media == "application/json+fhir"
    }
}
