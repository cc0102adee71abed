import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SyncEngine
import SyncModel
import SyncStore

/// The viewer's responses, every one with the same protective headers: a Content Security
/// Policy that allows no script and no foreign resource, `nosniff`, no referrer, no caching
/// (pages hold patient data).
enum WebResponse {
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    static func headers(contentType: String?) -> HTTPFields {
        var headers = HTTPFields()
        if let contentType { headers[.contentType] = contentType }
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[referrerPolicy] = "no-referrer"
        headers[.cacheControl] = "no-store"
        return headers
    }

    static func html(_ status: HTTPResponse.Status, _ page: HTML, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = headers(contentType: "text/html; charset=utf-8")
        for (name, value) in extra { headers.append(HTTPField(name: name, value: value)) }
        return Response(
            status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: page.text)))
    }

    /// `303 See Other` to a path of the viewer.
    static func redirect(_ location: String, extra: [(HTTPField.Name, String)] = []) -> Response {
        var headers = headers(contentType: nil)
        headers[.location] = location
        for (name, value) in extra { headers.append(HTTPField(name: name, value: value)) }
        return Response(status: .seeOther, headers: headers)
    }

    /// A plain-text answer (errors for non-page requests).
    static func text(_ status: HTTPResponse.Status, _ text: String, extra: [(HTTPField.Name, String)] = []) -> Response
    {
        var headers = headers(contentType: "text/plain; charset=utf-8")
        for (name, value) in extra { headers.append(HTTPField(name: name, value: value)) }
        return Response(
            status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    /// An attachment, always as a download (never shown inline in the viewer's origin).
    static func download(_ data: Data, contentType: String?, filename: String) -> Response {
        var headers = headers(contentType: safeContentType(contentType))
        headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `type/subtype` (with parameters) of safe characters, else `application/octet-stream`.
    static func safeContentType(_ value: String?) -> String {
        guard let value, (3...128).contains(value.utf8.count),
            value.utf8.allSatisfy({ b in b >= 0x20 && b < 0x7F && b != 0x22 && b != 0x5C }),
            value.split(separator: ";").first?.split(separator: "/").count == 2
        else { return "application/octet-stream" }
        return value
    }

    /// A download file name: `document-N` with an extension for the usual types.
    static func filename(index: Int, contentType: String?) -> String {
        let type = safeContentType(contentType).split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        let ext =
            switch type {
            case "application/pdf": ".pdf"
            case "text/plain": ".txt"
            case "text/html": ".html"
            case "image/jpeg": ".jpg"
            case "image/png": ".png"
            case "image/tiff": ".tiff"
            case "application/xml", "text/xml": ".xml"
            case "application/json", "application/fhir+json": ".json"
            default: ".bin"
            }
        return "document-\(index + 1)\(ext)"
    }
}
