import Foundation
import TOMLKit

/// Typed, path-aware access to a TOML table, with errors that name the file, the key and
/// what was expected (TOMLKit alone reports a wrong type as a missing key).
struct TOMLReader {
    let table: TOMLTable
    let file: String
    let path: String

    init(text: String, file: String) throws(ConfigError) {
        if let problem = Self.badTableHeader(text) ?? Self.unbalancedBrackets(text) {
            throw ConfigError(
                file: file, key: nil, message: "not valid TOML at line \(problem.line): \(problem.message)")
        }
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(
                file: file, key: nil,
                message:
                    "not valid TOML at line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)"
            )
        } catch {
            throw ConfigError(file: file, key: nil, message: "not valid TOML")
        }
        self.file = file
        self.path = ""
    }

    /// A table header whose name starts with a character TOML does not allow there (`[ ~ ]`,
    /// `[[é]]`): toml++ (under TOMLKit) asserts on it instead of reporting it (found by
    /// `make fuzz`), so it is refused here first. Every line is checked, those of multi-line
    /// strings too (no ehr-sync setting holds one; telling them apart needs the whole TOML
    /// grammar, comments included, which is the parser's job).
    static func badTableHeader(_ text: String) -> (line: Int, message: String)? {
        // A byte-order mark before the first line is not part of it (toml++ skips it too).
        var utf8 = Array(text.utf8)
        if utf8.starts(with: [0xEF, 0xBB, 0xBF]) { utf8.removeFirst(3) }
        // Bytes, not Characters: a combining mark after `[` would join it into one grapheme,
        // and "\r\n" is one Character.
        for (index, bytes) in utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            .enumerated()
        {
            var i = 0
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
            if i < bytes.count, bytes[i] == 0x5B {
                i += 1
                if i < bytes.count, bytes[i] == 0x5B { i += 1 }
                while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
                let allowed =
                    i < bytes.count
                    && {
                        let c = bytes[i]
                        return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                            || c == 0x5F || c == 0x2D || c == 0x22 || c == 0x27
                    }()
                if !allowed {
                    return (
                        index + 1,
                        "a table name must start with a letter, a digit, '_', '-' or a quote (a typo in a [section] line?)"
                    )
                }
            }
        }
        return nil
    }

    /// Brackets and braces that close nothing or the wrong one (`x = [[1}`), or never close,
    /// outside strings and comments: toml++ asserts on some of these too (found by `make
    /// fuzz`, in release builds as well), so they are refused here first.
    static func unbalancedBrackets(_ text: String) -> (line: Int, message: String)? {
        let bytes = Array(text.utf8)
        var open: [(byte: UInt8, line: Int)] = []
        var line = 1
        var i = 0
        func at(_ k: Int) -> UInt8? { k < bytes.count ? bytes[k] : nil }
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case 0x0A:
                line += 1
                i += 1
            case 0x23:  // # comment to the end of the line
                while i < bytes.count, bytes[i] != 0x0A { i += 1 }
            case 0x22, 0x27:  // " or '
                let multi = at(i + 1) == b && at(i + 2) == b
                i += multi ? 3 : 1
                while i < bytes.count {
                    if b == 0x22, bytes[i] == 0x5C {  // an escape in a basic string
                        i += 2
                        continue
                    }
                    if bytes[i] == 0x0A {
                        if !multi { break }
                        line += 1
                    }
                    if bytes[i] == b, !multi || (at(i + 1) == b && at(i + 2) == b) {
                        i += multi ? 3 : 1
                        // A closing """ may be followed by up to two more quotes of the content.
                        while multi, i < bytes.count, bytes[i] == b { i += 1 }
                        break
                    }
                    i += 1
                }
            case 0x5B, 0x7B:
                open.append((b, line))
                i += 1
            case 0x5D, 0x7D:
                guard let last = open.popLast(), last.byte == (b == 0x5D ? 0x5B : 0x7B) else {
                    return (line, "a '\(b == 0x5D ? "]" : "}")' that closes nothing, or the wrong bracket")
                }
                i += 1
            default:
                i += 1
            }
        }
        if let unclosed = open.last {
            return (unclosed.line, "a '\(unclosed.byte == 0x5B ? "[" : "{")' that is never closed")
        }
        return nil
    }

    private init(table: TOMLTable, file: String, path: String) {
        self.table = table
        self.file = file
        self.path = path
    }

    func keyName(_ key: String) -> String { path.isEmpty ? "[\(key)]" : "[\(path)] \(key)" }

    private func fail(_ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, key: keyName(key), message: message)
    }

    private func describe(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: "a string"
        case .int: "an integer"
        case .double: "a number"
        case .bool: "a boolean"
        case .table: "a table"
        case .array: "an array"
        default: "a date or time"
        }
    }

    func allowOnly(_ keys: Set<String>) throws(ConfigError) {
        for key in table.keys where !keys.contains(key) {
            let what = path.isEmpty ? "unknown section [\(key)]" : "unknown key \(key) in [\(path)]"
            throw ConfigError(
                file: file, key: nil, message: "\(what); known: \(keys.sorted().joined(separator: ", "))")
        }
    }

    func table(_ key: String) throws(ConfigError) -> TOMLReader? {
        guard let value = table[key] else { return nil }
        guard let t = value.table else { throw fail(key, "expected a table [\(key)], got \(describe(value))") }
        return TOMLReader(table: t, file: file, path: path.isEmpty ? key : "\(path).\(key)")
    }

    func requiredTable(_ key: String) throws(ConfigError) -> TOMLReader {
        guard let t = try table(key) else {
            throw ConfigError(file: file, key: "[\(key)]", message: "missing section [\(key)]")
        }
        return t
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let s = value.string else { throw fail(key, "expected a string, got \(describe(value))") }
        guard !s.isEmpty else { throw fail(key, "must not be empty") }
        return s
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let b = value.bool else { throw fail(key, "expected true or false, got \(describe(value))") }
        return b
    }

    /// The table's keys, for tables keyed by data (e.g. resource types).
    var keys: [String] { table.keys.sorted() }

    func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let s = try string(key) else { throw fail(key, "missing (expected a string)") }
        return s
    }

    func requiredURL(_ key: String) throws(ConfigError) -> URL {
        let s = try requiredString(key)
        guard let url = URL(string: s), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
            url.host != nil
        else { throw fail(key, "expected an http(s) URL such as \"https://ehr.example/fhir\", got \"\(s)\"") }
        return url
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let i = value.int else { throw fail(key, "expected an integer, got \(describe(value))") }
        guard range.contains(i) else {
            throw fail(key, "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(i)")
        }
        return i
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let d = value.double ?? value.int.map(Double.init) else {
            throw fail(key, "expected a number, got \(describe(value))")
        }
        guard range.contains(d) else {
            throw fail(key, "expected a number from \(range.lowerBound) to \(range.upperBound), got \(d)")
        }
        return d
    }

    func stringArray(_ key: String) throws(ConfigError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw fail(key, "expected an array of strings, got \(describe(value))") }
        var result: [String] = []
        for element in array {
            guard let s = element.string else {
                throw fail(key, "expected an array of strings, found \(describe(element))")
            }
            result.append(s)
        }
        return result
    }
}
