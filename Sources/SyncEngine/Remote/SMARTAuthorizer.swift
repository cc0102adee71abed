import AsyncHTTPClient
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import SyncModel
import SyncStore

/// SMART Backend Services client authentication (the `client_credentials` grant with a
/// `private_key_jwt` client assertion, RFC 7523).
///
/// Signs a short-lived JWT with the practice's private key, exchanges it at the token endpoint
/// for an access token, and caches the token until shortly before it expires; concurrent
/// callers share one token request.
///
/// ```swift
/// let smart = try SMARTAuthorizer(config.ehr.smart!, logger: logger)
/// let client = FHIRClient(..., authorization: { try await smart.authorization() })
/// ```
///
/// Neither the private key, the assertion nor the access token ever reaches a log line or an
/// error message.
public actor SMARTAuthorizer {
    /// Sends the form-encoded token request body to `url`; returns the status and body.
    public typealias Transport = @Sendable (_ url: URL, _ form: Data) async throws -> (status: Int, body: Data)

    public static let assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    public nonisolated let clientID: String
    public nonisolated let tokenURL: URL
    public nonisolated let scopes: String
    /// The `kid` header: the configured key id, else the key's JWK thumbprint.
    public nonisolated let keyID: String
    let key: JWTSigningKey
    let transport: Transport
    let wallClock: @Sendable () -> Double
    let monotonicClock: @Sendable () -> Double
    let logger: Logger

    struct Token: Sendable {
        var value: String
        /// Monotonic seconds after which a new token is requested.
        var refreshAt: Double
    }

    private var current: Token?
    private var refresh: Task<Token, any Error>?
    /// Token requests sent so far (successful or not).
    public private(set) var tokenRequests = 0

    /// Reads the private key named by the configuration (owner and mode checked like the
    /// replica key file).
    ///
    /// - Parameters:
    ///   - transport: replaces the HTTP POST (tests).
    ///   - now: replaces both clocks, in seconds since 1970 (tests).
    public init(
        _ config: SyncConfiguration.SMART, logger: Logger = Logger(label: "ehr-sync.smart"),
        transport: Transport? = nil, now: (@Sendable () -> Double)? = nil
    ) throws(SMARTAuthError) {
        self.init(
            clientID: config.clientID, tokenURL: config.tokenURL, scopes: config.scopes, keyID: config.keyID,
            key: try Self.loadKey(path: config.privateKeyFile), logger: logger, transport: transport, now: now)
    }

    public init(
        clientID: String, tokenURL: URL, scopes: String, keyID: String?, key: JWTSigningKey,
        logger: Logger = Logger(label: "ehr-sync.smart"), transport: Transport? = nil,
        now: (@Sendable () -> Double)? = nil
    ) {
        self.clientID = clientID
        self.tokenURL = tokenURL
        self.scopes = scopes
        self.keyID = keyID ?? key.thumbprint
        self.key = key
        self.logger = logger
        self.transport = transport ?? Self.post
        if let now {
            wallClock = now
            monotonicClock = now
        } else {
            wallClock = { Date().timeIntervalSince1970 }
            monotonicClock = { ContinuousClock.now.seconds }
        }
    }

    /// The `Authorization` header value, `Bearer <token>`, for ``FHIRClient``.
    ///
    /// A refused or unusable token request throws ``RemoteError/unavailable(route:reason:)``
    /// carrying the reason, so the client stops at once instead of retrying; an unreachable
    /// token endpoint (network error, 5xx, 429) throws ``SMARTAuthError``, which the client
    /// retries with backoff.
    public func authorization() async throws -> String {
        do {
            return "Bearer " + (try await accessToken())
        } catch let error where error.isTransient {
            throw error
        } catch {
            throw RemoteError.unavailable(route: "SMART token", reason: error.description)
        }
    }

    /// A valid access token: the cached one, or a new one (one request shared by all callers).
    public func accessToken() async throws(SMARTAuthError) -> String {
        if let current, monotonicClock() < current.refreshAt { return current.value }
        let task: Task<Token, any Error>
        if let refresh {
            task = refresh
        } else {
            tokenRequests += 1
            task = Task { try await self.requestToken() }
            refresh = task
        }
        let result: Result<Token, SMARTAuthError>
        do {
            result = .success(try await task.value)
        } catch let error as SMARTAuthError {
            result = .failure(error)
        } catch {
            result = .failure(.unavailable(reason: "token request interrupted"))
        }
        if refresh == task {
            refresh = nil
            if case .success(let token) = result { current = token }
        }
        return try result.get().value
    }

    /// Forgets the cached token (e.g. after the EHR answered 401 to it).
    public func invalidate() {
        current = nil
    }

    // MARK: Token request

    nonisolated func requestToken() async throws(SMARTAuthError) -> Token {
        let started = monotonicClock()
        let audience = tokenURL.absoluteString
        let assertion: String
        do {
            assertion = try JWT.clientAssertion(
                clientID: clientID, tokenURL: audience, keyID: keyID, key: key, now: wallClock())
        } catch {
            throw .keyFile("cannot sign the client assertion with the SMART private key (\(type(of: error)))")
        }
        let form = Self.formEncode([
            ("grant_type", "client_credentials"), ("scope", scopes), ("client_assertion_type", Self.assertionType),
            ("client_assertion", assertion),
        ])
        let response: (status: Int, body: Data)
        do {
            response = try await transport(tokenURL, Data(form.utf8))
        } catch {
            throw .unavailable(reason: FHIRClient.describe(error))
        }
        let granted = try Self.parseTokenResponse(status: response.status, body: response.body, tokenURL: audience)
        let margin = min(60, granted.expiresIn / 5)
        logger.info(
            "SMART access token obtained",
            metadata: ["expires_in": "\(Int(granted.expiresIn))", "scope": "\(granted.scope ?? scopes)"])
        return Token(value: granted.token, refreshAt: started + granted.expiresIn - margin)
    }

    /// Reads the token endpoint's answer (RFC 6749 sections 5.1 and 5.2).
    static func parseTokenResponse(status: Int, body: Data, tokenURL: String) throws(SMARTAuthError) -> (
        token: String, expiresIn: Double, scope: String?
    ) {
        let object = (try? JSONValue(data: body))?.objectValue
        switch status {
        case 200: break
        case 408, 429, 500...599: throw .unavailable(reason: "HTTP \(status)")
        case 300...399:
            throw .badResponse(
                tokenURL: tokenURL, reason: "HTTP \(status), a redirect, not followed; set token_url to its target")
        default:
            throw .refused(
                tokenURL: tokenURL, status: status, error: sanitize(object?["error"]?.stringValue),
                errorDescription: sanitize(object?["error_description"]?.stringValue))
        }
        guard let object else { throw .badResponse(tokenURL: tokenURL, reason: "not a JSON object") }
        guard let token = object["access_token"]?.stringValue, !token.isEmpty else {
            throw .badResponse(tokenURL: tokenURL, reason: "no access_token")
        }
        // RFC 6750 b64token: anything else could not travel in an Authorization header.
        guard token.unicodeScalars.allSatisfy(isTokenCharacter) else {
            throw .badResponse(tokenURL: tokenURL, reason: "the access_token holds characters a bearer token cannot")
        }
        let type = object["token_type"]?.stringValue
        guard type?.lowercased() == "bearer" else {
            throw .badResponse(
                tokenURL: tokenURL, reason: "token_type is \(sanitize(type) ?? "missing"), expected \"bearer\"")
        }
        var expiresIn = 300.0  // required by SMART; assume a short life when a server omits it
        if let value = object["expires_in"] {
            guard let seconds = Self.number(value),
                seconds.isFinite, seconds > 0
            else {
                throw .badResponse(tokenURL: tokenURL, reason: "expires_in is not a positive number")
            }
            expiresIn = min(seconds, 86_400 * 365)
        }
        return (token, expiresIn, sanitize(object["scope"]?.stringValue))
    }

    static func isTokenCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "A"..."Z", "a"..."z", "0"..."9", "-", ".", "_", "~", "+", "/", "=": true
        default: false
        }
    }

    /// Printable ASCII only, at most 200 characters: server text goes into logs and status.
    /// A JSON number, or a number sent as a string (some servers do).
    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .number(let text), .string(let text): Double(text)
        default: nil
        }
    }

    static func sanitize(_ value: String?) -> String? {
        guard let text = value else { return nil }
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.filter { (0x20...0x7E).contains($0.value) }))
        return clean.count > 200 ? String(clean.prefix(200)) + "…" : clean
    }

    /// `application/x-www-form-urlencoded`: everything but unreserved characters percent-encoded.
    static func formEncode(_ fields: [(String, String)]) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return fields.map { name, value in
            (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? "") + "="
                + (value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        }.joined(separator: "&")
    }

    // MARK: Key file

    /// Reads a PEM private key from a file that the service user owns with mode 0400 or 0600.
    public static func loadKey(path: String) throws(SMARTAuthError) -> JWTSigningKey {
        do {
            try KeySource.checkPermissions(path: path)
        } catch {
            throw .keyFile(keyFileProblem(error, path: path))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .keyFile("cannot read the SMART private key file \(path)")
        }
        do {
            return try JWTSigningKey(pemRepresentation: String(decoding: data, as: UTF8.self))
        } catch {
            throw .keyFile("SMART private key file \(path): \(error.description)")
        }
    }

    static func keyFileProblem(_ error: KeyError, path: String) -> String {
        let name = "SMART private key file \(path)"
        switch error {
        case .unreadable(_, let reason):
            return "cannot read the \(name): \(reason)"
        case .notARegularFile:
            return "\(name) is not a regular file (links and devices are refused)"
        case .wrongOwner(_, let owner, let expected):
            return "\(name) is owned by uid \(owner), but the service runs as uid \(expected); "
                + "fix with: chown \(expected) \(path)"
        case .loosePermissions(_, let mode):
            return "\(name) has mode \(String(mode, radix: 8)), readable or writable by others; "
                + "it must be 0400 or 0600; fix with: chmod 600 \(path)"
        case .noSource, .malformed:
            return "\(name): \(error.description)"
        }
    }

    // MARK: HTTP

    /// A client of its own: redirects are not followed (the assertion goes to token_url only).
    private static let http: HTTPClient = {
        var config = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(30)))
        config.connectionPool = .init(idleTimeout: .seconds(30))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    @Sendable static func post(_ url: URL, _ form: Data) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "ehr-sync/\(EHRSync.version)")
        request.body = .bytes(ByteBuffer(bytes: form))
        let response = try await http.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), Data(body.readableBytesView))
    }
}

/// Why SMART Backend Services authorization failed. Messages name the file, the endpoint and
/// the server's OAuth error, never the key, the assertion or a token.
public enum SMARTAuthError: Error, Equatable, CustomStringConvertible {
    /// The private key file is missing, unprotected or not a usable key.
    case keyFile(String)
    /// The token endpoint refused the client (4xx): client id, key, scopes or registration.
    case refused(tokenURL: String, status: Int, error: String?, errorDescription: String?)
    /// The token endpoint is unreachable or answered 5xx/429/408: worth retrying.
    case unavailable(reason: String)
    /// The token endpoint answered with something that is not a bearer token.
    case badResponse(tokenURL: String, reason: String)

    public var isTransient: Bool {
        if case .unavailable = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .keyFile(let message):
            return message
        case .refused(let url, let status, let error, let detail):
            let oauth = [error, detail].compactMap { $0 }.joined(separator: ": ")
            return "the token endpoint \(url) refused the client: HTTP \(status)"
                + (oauth.isEmpty ? "" : " \(oauth)")
                + "; check [ehr.smart] client_id, key_id, private_key_file and scopes against the client "
                + "registered with the EHR (its public key or JWKS)"
        case .unavailable(let reason):
            return "SMART token endpoint unavailable: \(reason)"
        case .badResponse(let url, let reason):
            return "unusable answer from the token endpoint \(url): \(reason)"
        }
    }
}
