import Foundation
import TOMLKit

/// Typed, path-aware access to a TOML table, with errors that name the file, the key and
/// what was expected (TOMLKit alone reports a wrong type as a missing key).
struct TOMLReader {
    let table: TOMLTable
    let file: String
    let path: String

    init(text: String, file: String) throws(ConfigError) {
        if let problem = Self.badTableHeader(text) {
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
    /// `make fuzz`), so it is refused here first. Lines inside multi-line strings are skipped.
    static func badTableHeader(_ text: String) -> (line: Int, message: String)? {
        var inString: String?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if inString == nil, trimmed.first == "[" {
                let name = trimmed.dropFirst(trimmed.hasPrefix("[[") ? 2 : 1).drop { $0 == " " || $0 == "\t" }
                let allowed = name.first.map { c in
                    c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-" || c == "\"" || c == "'")
                }
                if allowed != true {
                    return (
                        index + 1,
                        "a table name must start with a letter, a digit, '_', '-' or a quote (a typo in a [section] line?)"
                    )
                }
            }
            // Multi-line strings: an odd number of delimiters on a line opens or closes one.
            for delimiter in [String(repeating: "\"", count: 3), "'''"] where inString == nil || inString == delimiter {
                if line.components(separatedBy: delimiter).count % 2 == 0 {
                    inString = inString == nil ? delimiter : nil
                }
            }
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
