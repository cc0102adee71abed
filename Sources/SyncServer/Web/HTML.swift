import Foundation
import SyncEngine
import SyncModel
import SyncStore

/// A fragment of HTML. Literal text in an `HTML` string is markup written here; every
/// interpolated `String` goes through ``HTML/escape(_:)``, so record content (a patient's
/// name, a note, a search term) can never become markup. Only another `HTML` value is
/// inserted as it is.
///
///     let name = "<script>"
///     let cell: HTML = "<td>\(name)</td>"          // <td>&lt;script&gt;</td>
///     let row: HTML = "<tr>\(cell)</tr>"           // cell inserted as markup
public struct HTML: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var text: String

    /// Markup as it is: for text written in this module, never for data.
    init(raw: String) {
        text = raw
    }

    public init(stringLiteral value: String) {
        text = value
    }

    public init(stringInterpolation: StringInterpolation) {
        text = stringInterpolation.text
    }

    public var description: String { text }

    public static let empty = HTML(raw: "")

    /// Escapes text for HTML content and for quoted attribute values: `&`, `<`, `>`, `"`
    /// and `'` become character references; NUL and other C0 controls except tab and line
    /// breaks are dropped. The one escaping function of the viewer.
    public static func escape(_ text: String) -> String {
        // Every byte to change is ASCII, and UTF-8 never puts an ASCII byte inside a longer
        // sequence: bytes are enough. Most text has nothing to change.
        guard text.utf8.contains(where: { needsEscape($0) }) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 32)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): out.append(contentsOf: "&#39;".utf8)
            case UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): out.append(byte)
            case 0..<0x20, 0x7F: continue
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always) static func needsEscape(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "&"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""), UInt8(ascii: "'"), 0x7F:
            true
        case UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): false
        default: byte < 0x20
        }
    }

    /// Fragments one after the other.
    public static func join(_ parts: some Sequence<HTML>, separator: HTML = .empty) -> HTML {
        HTML(raw: parts.map(\.text).joined(separator: separator.text))
    }

    public static func + (lhs: HTML, rhs: HTML) -> HTML {
        HTML(raw: lhs.text + rhs.text)
    }

    public static func += (lhs: inout HTML, rhs: HTML) {
        lhs.text += rhs.text
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var text = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        public mutating func appendLiteral(_ literal: String) {
            text += literal
        }

        /// Text: escaped.
        public mutating func appendInterpolation(_ value: String) {
            text += HTML.escape(value)
        }

        /// Optional text: escaped, nothing when nil.
        public mutating func appendInterpolation(_ value: String?) {
            if let value { text += HTML.escape(value) }
        }

        public mutating func appendInterpolation(_ value: some BinaryInteger) {
            text += String(value)
        }

        /// Markup: as it is.
        public mutating func appendInterpolation(_ value: HTML) {
            text += value.text
        }

        public mutating func appendInterpolation(_ values: [HTML]) {
            for value in values { text += value.text }
        }
    }
}

/// Building links: path segments and query strings percent-encoded (then HTML-escaped by
/// the interpolation that places them in an attribute).
enum WebURL {
    static let unreserved = CharacterSet(
        charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    static func component(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    /// `/patients/ID` and the like from raw segments.
    static func path(_ segments: String...) -> String {
        "/" + segments.map(component).joined(separator: "/")
    }

    /// `path?name=value&…`, empty values left out.
    static func with(_ path: String, query: [(String, String)]) -> String {
        let items = query.filter { !$0.1.isEmpty }
        guard !items.isEmpty else { return path }
        return path + "?" + items.map { "\(component($0.0))=\(component($0.1))" }.joined(separator: "&")
    }
}
