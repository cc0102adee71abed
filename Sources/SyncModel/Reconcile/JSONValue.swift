public import Foundation

/// A JSON document as a value, for the three-way merge of FHIR resources.
///
/// - Numbers keep their exact source text (`1.50` stays `1.50`: FHIR decimals carry their
///   precision), so two numbers are equal only when their text is.
/// - Strings and object keys compare by their UTF-8 bytes (not by Unicode canonical
///   equivalence), so equal values always serialise to equal bytes.
/// - Objects keep their members sorted by the UTF-8 bytes of the keys, with unique keys:
///   the order a server happened to send is not part of the value.
///
/// `init(data:)` parses strict JSON (RFC 8259, duplicate keys refused, nesting limited);
/// `data()` writes compact JSON with sorted keys. Neither carries content into errors.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number's text as it appeared in the source (valid JSON number syntax).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A parse failure: where, never what (the input may hold patient data).
    public enum ParseError: Error, Equatable, Sendable {
        case malformed(offset: Int)
        case invalidUTF8(offset: Int)
        case duplicateKey(offset: Int)
        case tooDeep(offset: Int)
    }

    /// Maximum nesting of arrays and objects accepted by the parser.
    public static let maximumDepth = 512

    /// Parses one JSON value (any type) from `data`; whitespace around it is allowed, a
    /// leading UTF-8 byte-order mark is skipped, anything else after it is an error.
    public init(data: Data) throws(ParseError) {
        let result: Result<JSONValue, ParseError> = data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw)
            return Result { () throws(ParseError) in try parser.parseDocument() }
        }
        self = try result.get()
    }

    /// Compact JSON, object keys sorted by their UTF-8 bytes: equal values give equal bytes.
    public func data() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONWriter.write(self, into: &out)
        return Data(out)
    }

    // MARK: Accessors

    /// The member `key` when this is an object, else nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }

    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    // MARK: Equality by bytes

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return sameUTF8(a, b)
        case (.string(let a), .string(let b)): return sameUTF8(a, b)
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0 as UInt8)
        case .bool(let b):
            hasher.combine(1 as UInt8)
            hasher.combine(b)
        case .number(let text):
            hasher.combine(2 as UInt8)
            hashUTF8(text, into: &hasher)
        case .string(let text):
            hasher.combine(3 as UInt8)
            hashUTF8(text, into: &hasher)
        case .array(let elements):
            hasher.combine(4 as UInt8)
            hasher.combine(elements)
        case .object(let object):
            hasher.combine(5 as UInt8)
            hasher.combine(object)
        }
    }
}

/// The members of a JSON object, sorted by the UTF-8 bytes of their keys; keys are unique.
public struct JSONObject: Sendable, Hashable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue

        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }

        public static func == (lhs: Member, rhs: Member) -> Bool {
            sameUTF8(lhs.key, rhs.key) && lhs.value == rhs.value
        }

        public func hash(into hasher: inout Hasher) {
            hashUTF8(key, into: &hasher)
            hasher.combine(value)
        }
    }

    public private(set) var members: [Member]

    public init() {
        members = []
    }

    /// An object from key/value pairs; when a key repeats, the last value wins.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        members = []
        for (key, value) in pairs { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// Members already sorted by key bytes with unique keys (checked by the caller).
    init(sortedUnique members: [Member]) {
        self.members = members
    }

    public var keys: [String] { members.map(\.key) }

    public var startIndex: Int { members.startIndex }
    public var endIndex: Int { members.endIndex }

    public subscript(position: Int) -> Member { members[position] }

    /// The value of `key`, or nil when absent; setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            let (index, found) = search(key)
            guard found else { return nil }
            return members[index].value
        }
        set {
            let (index, found) = search(key)
            switch (found, newValue) {
            case (true, let value?): members[index].value = value
            case (true, nil): members.remove(at: index)
            case (false, let value?): members.insert(Member(key: key, value: value), at: index)
            case (false, nil): break
            }
        }
    }

    /// Binary search by key bytes: the index of `key`, or where it would be inserted.
    private func search(_ key: String) -> (index: Int, found: Bool) {
        var low = 0
        var high = members.count
        while low < high {
            let mid = (low + high) / 2
            let candidate = members[mid].key
            if utf8Precedes(candidate, key) {
                low = mid + 1
            } else {
                high = mid
            }
        }
        return (low, low < members.count && sameUTF8(members[low].key, key))
    }
}

// MARK: - Literals

// Deliberately not ExpressibleByNilLiteral: `nil` must always mean "absent" (Optional),
// never JSON `null`, or `cond ? value : nil` would silently produce `.null`.
extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }

    public init(integerLiteral value: Int) {
        self = .number(String(value))
    }

    /// The shortest text that reads back as `value`; prefer `.number("1.50")` when the
    /// exact text matters.
    public init(floatLiteral value: Double) {
        precondition(value.isFinite, "JSON numbers are finite")
        self = .number(String(value))
    }

    public init(stringLiteral value: String) {
        self = .string(value)
    }

    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}

// MARK: - Codable

extension JSONValue: Codable {
    /// Decodes any JSON. Through `JSONDecoder` numbers arrive as `Decimal`, so their text is
    /// normalised (`1.50` becomes `1.5`); use `init(data:)` where the exact text matters.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode(Decimal.self), value.isFinite {
            self = .number(value.description)
        } else if let value = try? container.decode(Double.self), value.isFinite {
            self = .number(String(value))
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(JSONObject(value.map { ($0.key, $0.value) }))
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Encodes as plain JSON. Numbers go out as `Decimal` (exact for up to 38 significant
    /// digits; trailing fractional zeros are not kept by `JSONEncoder`), else as `Double`.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let text):
            var container = encoder.singleValueContainer()
            if let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), decimal.isFinite {
                try container.encode(decimal)
            } else if let double = Double(text), double.isFinite {
                try container.encode(double)
            } else {
                throw EncodingError.invalidValue(
                    self, EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "number out of range")
                )
            }
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .object(let object):
            var container = encoder.container(keyedBy: MemberKey.self)
            for member in object { try container.encode(member.value, forKey: MemberKey(stringValue: member.key)) }
        }
    }

    private struct MemberKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }

        init(stringValue: String) {
            self.stringValue = stringValue
        }

        init?(intValue: Int) {
            return nil
        }
    }
}

// MARK: - Byte comparisons

@inline(__always) func sameUTF8(_ a: String, _ b: String) -> Bool {
    a.utf8.elementsEqual(b.utf8)
}

@inline(__always) func utf8Precedes(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}

private func hashUTF8(_ text: String, into hasher: inout Hasher) {
    hasher.combine(text.utf8.count)
    for byte in text.utf8 { hasher.combine(byte) }
}

// MARK: - Parser

private struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONValue.ParseError) -> JSONValue {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
        skipSpace()
        let value = try parseValue(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw .malformed(offset: i) }
        return value
    }

    private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard i < bytes.count else { throw .malformed(offset: i) }
        switch bytes[i] {
        case 0x7B: return try parseObject(depth: depth + 1)
        case 0x5B: return try parseArray(depth: depth + 1)
        case 0x22: return .string(try parseString())
        case 0x74: return try literal("true", .bool(true))
        case 0x66: return try literal("false", .bool(false))
        case 0x6E: return try literal("null", .null)
        case 0x2D, 0x30...0x39: return .number(try parseNumber())
        default: throw .malformed(offset: i)
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(JSONValue.ParseError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard i + count <= bytes.count else { throw .malformed(offset: i) }
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
        for k in 0..<count where bytes[i + k] != expected[k] { throw .malformed(offset: i + k) }
        i += count
        return value
    }

    private mutating func parseObject(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw .tooDeep(offset: i) }
        let objectStart = i
        i += 1  // {
        skipSpace()
        var members: [JSONObject.Member] = []
        if i < bytes.count, bytes[i] == 0x7D {
            i += 1
            return .object(JSONObject())
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x22 else { throw .malformed(offset: i) }
            let key = try parseString()
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x3A else { throw .malformed(offset: i) }
            i += 1
            skipSpace()
            let value = try parseValue(depth: depth)
            members.append(JSONObject.Member(key: key, value: value))
            skipSpace()
            guard i < bytes.count else { throw .malformed(offset: i) }
            if bytes[i] == 0x2C {
                i += 1
                continue
            }
            guard bytes[i] == 0x7D else { throw .malformed(offset: i) }
            i += 1
            break
        }
        members.sort { utf8Precedes($0.key, $1.key) }
        for k in members.indices.dropFirst() where sameUTF8(members[k - 1].key, members[k].key) {
            throw .duplicateKey(offset: objectStart)
        }
        return .object(JSONObject(sortedUnique: members))
    }

    private mutating func parseArray(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw .tooDeep(offset: i) }
        i += 1  // [
        skipSpace()
        var elements: [JSONValue] = []
        if i < bytes.count, bytes[i] == 0x5D {
            i += 1
            return .array(elements)
        }
        while true {
            skipSpace()
            elements.append(try parseValue(depth: depth))
            skipSpace()
            guard i < bytes.count else { throw .malformed(offset: i) }
            if bytes[i] == 0x2C {
                i += 1
                continue
            }
            guard bytes[i] == 0x5D else { throw .malformed(offset: i) }
            i += 1
            return .array(elements)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as written.
    private mutating func parseNumber() throws(JSONValue.ParseError) -> String {
        let start = i
        if bytes[i] == 0x2D { i += 1 }
        guard i < bytes.count, isDigit(bytes[i]) else { throw .malformed(offset: i) }
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == 0x2E {
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw .malformed(offset: i) }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == 0x65 || bytes[i] == 0x45 {
            i += 1
            if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw .malformed(offset: i) }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    }

    @inline(__always) private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    private mutating func parseString() throws(JSONValue.ParseError) -> String {
        let start = i
        i += 1  // opening quote
        var plainEnd = i
        // Fast path: no escapes.
        while plainEnd < bytes.count {
            let b = bytes[plainEnd]
            if b == 0x22 || b == 0x5C || b < 0x20 { break }
            plainEnd += 1
        }
        guard plainEnd < bytes.count else { throw .malformed(offset: plainEnd) }
        if bytes[plainEnd] == 0x22 {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[i..<plainEnd])
            guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidUTF8(offset: start) }
            i = plainEnd + 1
            return text
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[i..<plainEnd]))
        i = plainEnd
        while true {
            guard i < bytes.count else { throw .malformed(offset: i) }
            let b = bytes[i]
            switch b {
            case 0x22:
                i += 1
                guard let text = String(validating: out, as: UTF8.self) else { throw .invalidUTF8(offset: start) }
                return text
            case 0x5C:
                try parseEscape(into: &out)
            case 0..<0x20:
                throw .malformed(offset: i)
            default:
                out.append(b)
                i += 1
            }
        }
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONValue.ParseError) {
        guard i + 1 < bytes.count else { throw .malformed(offset: i) }
        let e = bytes[i + 1]
        i += 2
        switch e {
        case 0x22, 0x5C, 0x2F: out.append(e)
        case 0x62: out.append(0x08)
        case 0x66: out.append(0x0C)
        case 0x6E: out.append(0x0A)
        case 0x72: out.append(0x0D)
        case 0x74: out.append(0x09)
        case 0x75:
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard i + 1 < bytes.count, bytes[i] == 0x5C, bytes[i + 1] == 0x75 else {
                    throw .invalidUTF8(offset: i)
                }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw .invalidUTF8(offset: i) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw .invalidUTF8(offset: i) }
            out.append(contentsOf: UTF8.encode(unicode)!)
        default:
            throw .malformed(offset: i - 1)
        }
    }

    private mutating func hex4() throws(JSONValue.ParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw .malformed(offset: i) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let digit: UInt32
            switch b {
            case 0x30...0x39: digit = UInt32(b - 0x30)
            case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
            default: throw .malformed(offset: i)
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }
}

// MARK: - Writer

private enum JSONWriter {
    static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let text): writeString(text, into: &out)
        case .array(let elements):
            out.append(0x5B)
            for (k, element) in elements.enumerated() {
                if k > 0 { out.append(0x2C) }
                write(element, into: &out)
            }
            out.append(0x5D)
        case .object(let object):
            out.append(0x7B)
            for (k, member) in object.enumerated() {
                if k > 0 { out.append(0x2C) }
                writeString(member.key, into: &out)
                out.append(0x3A)
                write(member.value, into: &out)
            }
            out.append(0x7D)
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(0x22)
        for b in text.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, 0x62])
            case 0x0C: out.append(contentsOf: [0x5C, 0x66])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0..<0x20:
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0x0F)]])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }
}
