import Foundation

/// A `host:port` to listen on, from the configuration (`[metrics] listen`, `[local_api]
/// listen`): an IP literal (IPv6 in brackets: `[::1]:9464`) or `localhost`, and a port from 1
/// to 65535. Host names are refused: what a listener binds to must not depend on a resolver.
public struct ListenAddress: Sendable, Equatable {
    /// The host as written, without brackets.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`.
    ///
    /// - Throws: ``ListenAddressError`` saying what was expected, with the text (configuration,
    ///   never patient data) shortened.
    public static func parse(_ text: String) throws(ListenAddressError) -> ListenAddress {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw ListenAddressError(
                    "expected host:port like \"127.0.0.1:9464\" or \"[::1]:9464\", got \"\(text.prefix(80))\"")
            }
            portText = rest.dropFirst()
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ListenAddressError(
                    "expected host:port like \"127.0.0.1:9464\" (IPv6 in brackets: \"[::1]:9464\"), got \"\(text.prefix(80))\""
                )
            }
            host = parts[0]
            portText = parts[1]
        }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw ListenAddressError("expected a port from 1 to 65535 after the host, got \"\(text.prefix(80))\"")
        }
        let address = ListenAddress(host: String(host), port: port)
        guard address.addressBytes != nil else {
            throw ListenAddressError("\"\(host.prefix(64))\" is not an IP address (e.g. 127.0.0.1, 192.168.1.10, ::1)")
        }
        return address
    }

    /// A `[metrics] listen` value: like ``parse(_:)``, and on loopback only (metrics are not
    /// authenticated).
    public static func parseLoopback(_ text: String) throws(ListenAddressError) -> ListenAddress {
        try parse(text).requireLoopback()
    }

    /// This address, refused unless it is an IP literal on loopback.
    public func requireLoopback() throws(ListenAddressError) -> ListenAddress {
        let shown = host.count > 64 ? host.prefix(64) + "…" : Substring(host)
        let hint = "metrics are served on loopback only: use 127.0.0.1, ::1 or localhost"
        guard addressBytes != nil else {
            throw ListenAddressError("metrics host \"\(shown)\" is not an IP address; \(hint)")
        }
        guard isLoopback else {
            throw ListenAddressError("metrics host \"\(shown)\" is not a loopback address; \(hint)")
        }
        return self
    }

    /// The IP literal to bind (`localhost` is 127.0.0.1).
    public var ipLiteral: String { host.lowercased() == "localhost" ? "127.0.0.1" : host }

    /// The address's bytes (4 for IPv4, 16 for IPv6); nil when the host is not an IP literal.
    var addressBytes: [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, ipLiteral, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, ipLiteral, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// Whether only this machine can reach it (127.0.0.0/8, ::1, localhost).
    public var isLoopback: Bool {
        guard let bytes = addressBytes else { return false }
        if bytes.count == 4 { return bytes[0] == 127 }
        return bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
}

/// A listen address that cannot be used, and why.
public struct ListenAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
