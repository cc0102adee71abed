import Foundation
import SyncEngine
import SyncModel
import SyncTestSupport
import Synchronization
import Testing

/// SMART Backend Services against a real server: sekmet with inbound SMART auth required and one
/// registered client (its JWKS), the real `ehr-syncd` with `[ehr.smart]`.
@Suite(.serialized) struct SMARTAuthTests {
    static let clientID = "ehr-sync-practice"
    static let types = ["Patient", "Practitioner", "Observation"]

    /// A private key file as an operator would create it: PEM, mode 0600, owned by the service user.
    static func writeKey(_ key: JWTSigningKey, in dir: TemporaryDirectory, name: String = "smart-key.pem") throws
        -> String
    {
        let path = dir.file(name)
        try Data(key.pemRepresentation.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        return path
    }

    static func register(_ key: JWTSigningKey, keyID: String? = nil, tokenLifetime: Int = 3600)
        -> SMARTClientRegistration
    {
        SMARTClientRegistration(
            clientID: clientID, jwks: String(decoding: key.publicJWKS(keyID: keyID), as: UTF8.self),
            tokenLifetime: tokenLifetime)
    }

    /// The `[ehr.smart]` table, appended to the fixture's `[ehr]` table.
    static func smartTOML(_ fhir: FHIRTestServer, keyPath: String, keyID: String? = nil) -> String {
        """
        [ehr.smart]
        client_id = "\(clientID)"
        private_key_file = "\(keyPath)"
        token_url = "\(fhir.tokenURL)"
        scopes = "system/*.read"
        \(keyID.map { "key_id = \"\($0)\"" } ?? "")
        """
    }

    /// Another SMART client of the same practice, allowed to write: makes the server's content.
    static func writer(_ fhir: FHIRTestServer, key: JWTSigningKey) throws -> SMARTAuthorizer {
        SMARTAuthorizer(
            clientID: clientID, tokenURL: try #require(URL(string: fhir.tokenURL)), scopes: "system/*.*", keyID: nil,
            key: key)
    }

    /// PUTs a small synthetic practice with the writer's token; returns the ids by type.
    static func seed(_ fhir: FHIRTestServer, writer: SMARTAuthorizer) async throws -> [String: [String]] {
        let server = ServerClient(baseURL: fhir.baseURL)
        let auth = [("Authorization", try await writer.authorization())]
        var ids: [String: [String]] = [:]
        var resources: [[String: Any]] = [
            ["resourceType": "Practitioner", "id": "dr-1", "name": [["family": "Martin", "given": ["Claire"]]]]
        ]
        for p in 1...3 {
            resources.append([
                "resourceType": "Patient", "id": "pat-\(p)", "name": [["family": "Synthetic\(p)", "given": ["Test"]]],
                "birthDate": "1980-0\(p)-15", "generalPractitioner": [["reference": "Practitioner/dr-1"]],
            ])
            for o in 1...2 {
                resources.append([
                    "resourceType": "Observation", "id": "obs-\(p)-\(o)", "status": "final",
                    "code": ["coding": [["system": "http://loinc.org", "code": "8867-4"]]],
                    "subject": ["reference": "Patient/pat-\(p)"], "valueQuantity": ["value": 60 + p * 10 + o],
                ])
            }
        }
        for resource in resources {
            let type = resource["resourceType"] as! String
            let id = resource["id"] as! String
            let body = try JSONSerialization.data(withJSONObject: resource)
            let status = try await server.request(.PUT, "\(type)/\(id)", body: body, headers: auth).status
            #expect(status == 201, "PUT \(type)")
            ids[type, default: []].append(id)
        }
        return ids
    }

    /// Nothing that looks like a JWT (an access token or a client assertion) in the daemon's log.
    static func expectNoJWT(in log: String) {
        #expect(!log.contains("eyJ"), "a JWT reached the log")
    }

    @Test(arguments: [JWSAlgorithm.es384, .rs384])
    func daemonMirrorsAServerThatRequiresSMARTBackendServices(_ algorithm: JWSAlgorithm) async throws {
        let key = algorithm == .es384 ? JWTSigningKey.generateES384() : try JWTSigningKey.generateRS384()
        let fhir = try await FHIRTestServer.start(smartClient: Self.register(key, keyID: "practice-key-1"))
        defer { fhir.stop() }

        // The server really requires a token.
        let anonymous = ServerClient(baseURL: fhir.baseURL)
        #expect(try await anonymous.request(.GET, "Patient").status == 401)

        let writer = try Self.writer(fhir, key: key)
        let ids = try await Self.seed(fhir, writer: writer)

        let keys = try TemporaryDirectory("smart-key")
        let keyPath = try Self.writeKey(key, in: keys)
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(Self.types))",
            ehr: Self.smartTOML(fhir, keyPath: keyPath, keyID: "practice-key-1"))
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(4000))")
        #expect(fixture.log.contains("SMART access token obtained"))
        do {
            let replica = try fixture.openReplica()
            defer { replica.close() }
            for type in Self.types {
                #expect(try replica.records.count(type: type) == ids[type]?.count, "count of \(type)")
                for id in ids[type] ?? [] {
                    #expect(try replica.records.resource(type: type, id: id) != nil, "\(type) in the replica")
                }
            }
        }

        // An incremental cycle (history, with a new token: one process, one token request each).
        let server = ServerClient(baseURL: fhir.baseURL)
        let observation: [String: Any] = [
            "resourceType": "Observation", "id": "obs-new", "status": "final",
            "code": ["coding": [["system": "http://loinc.org", "code": "8867-4"]]],
            "subject": ["reference": "Patient/pat-1"],
        ]
        let put = try await server.request(
            .PUT, "Observation/obs-new", body: try JSONSerialization.data(withJSONObject: observation),
            headers: [("Authorization", try await writer.authorization())])
        #expect(put.status == 201)
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(4000))")
        do {
            let replica = try fixture.openReplica()
            defer { replica.close() }
            #expect(try replica.records.resource(type: "Observation", id: "obs-new") != nil)
            #expect(try replica.records.count(type: "Observation") == 7)
        }
        Self.expectNoJWT(in: fixture.log)
    }

    /// Real servers' access tokens can stop working before their announced lifetime (a few
    /// minutes at Epic, revocation): the proxy answers 401 to every token after its 12th
    /// request. The daemon asks for a new token and goes on where it was, page after page.
    @Test func tokensThatExpireMidRunAreReplacedAndTheCopyGoesOn() async throws {
        let key = JWTSigningKey.generateES384()
        let fhir = try await FHIRTestServer.start(smartClient: Self.register(key, keyID: "practice-key-1"))
        defer { fhir.stop() }
        let writer = try Self.writer(fhir, key: key)
        let ids = try await Self.seed(fhir, writer: writer)
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let uses = Mutex<[String: Int]>([:])
        proxy.setPersonality { request in
            guard let token = request.header("authorization") else { return nil }
            let n = uses.withLock {
                $0[token, default: 0] += 1
                return $0[token]!
            }
            return n > 12 ? .status(401) : nil
        }
        let keys = try TemporaryDirectory("smart-key")
        let keyPath = try Self.writeKey(key, in: keys)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"),
            sync: "resource_types = \(typeList(Self.types))\npage_size = 1\nbulk_export = \"off\"",
            ehr: Self.smartTOML(fhir, keyPath: keyPath, keyID: "practice-key-1"))
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(4000))")
        let refused = await proxy.settledRequests().filter { $0.status == 401 }.count
        #expect(refused >= 2, "the run was meant to outlive several tokens")
        #expect(uses.withLock { $0.count } >= 3)
        #expect(fixture.log.components(separatedBy: "access token refused (401)").count - 1 == refused)
        let replica = try fixture.openReplica()
        defer { replica.close() }
        for type in Self.types {
            #expect(try replica.records.count(type: type) == ids[type]?.count, "count of \(type)")
        }
        Self.expectNoJWT(in: fixture.log)
        try await proxy.stop()
    }

    @Test func aKeyTheServerDoesNotKnowFailsFastWithTheOAuthError() async throws {
        let registered = JWTSigningKey.generateES384()
        let fhir = try await FHIRTestServer.start(smartClient: Self.register(registered))
        defer { fhir.stop() }

        let keys = try TemporaryDirectory("smart-key")
        let wrongKeyPath = try Self.writeKey(JWTSigningKey.generateES384(), in: keys)
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList(Self.types))",
            ehr: Self.smartTOML(fhir, keyPath: wrongKeyPath))
        let started = Date()
        let status = try fixture.runOnce()
        let log = fixture.log
        #expect(status != 0, "daemon log:\n\(log.suffix(3000))")
        #expect(Date().timeIntervalSince(started) < 30, "a refused client is not retried with backoff")
        #expect(log.contains("sync did not complete"), "\(log.suffix(3000))")
        #expect(log.contains("HTTP 401 invalid_client"), "\(log.suffix(3000))")
        #expect(log.contains("client_assertion verification failed"), "\(log.suffix(3000))")
        #expect(log.contains(fhir.tokenURL))
        #expect(log.contains("[ehr.smart]"))
        Self.expectNoJWT(in: log)
        let replica = try fixture.openReplica()
        defer { replica.close() }
        #expect(try replica.records.count() == 0)
    }

    @Test func anUnknownClientIDIsRefusedWithTheOAuthError() async throws {
        let key = JWTSigningKey.generateES384()
        let fhir = try await FHIRTestServer.start(smartClient: Self.register(key))
        defer { fhir.stop() }
        let smart = SMARTAuthorizer(
            clientID: "someone-else", tokenURL: try #require(URL(string: fhir.tokenURL)), scopes: "system/*.read",
            keyID: nil, key: key)
        do {
            _ = try await smart.accessToken()
            Issue.record("an unknown client got a token")
        } catch {
            guard case .refused(_, let status, let oauthError, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(status == 401)
            #expect(oauthError == "invalid_client")
        }
    }

    @Test func aKeyFileReadableByOthersStopsTheDaemonAtStart() throws {
        let keys = try TemporaryDirectory("smart-key")
        let keyPath = try Self.writeKey(JWTSigningKey.generateES384(), in: keys)
        chmod(keyPath, 0o644)
        let fixture = try DaemonFixture(
            baseURL: "http://127.0.0.1:9/fhir",
            ehr: """
                [ehr.smart]
                client_id = "\(Self.clientID)"
                private_key_file = "\(keyPath)"
                token_url = "http://127.0.0.1:9/auth/token"
                """)
        #expect(try fixture.runOnce() == 77, "daemon log:\n\(fixture.log.suffix(2000))")
        #expect(fixture.log.contains("[ehr.smart] private_key_file"))
        #expect(fixture.log.contains("fix with: chmod 600 \(keyPath)"), "\(fixture.log.suffix(2000))")
        #expect(!fixture.log.contains("BEGIN"), "no key material in the log")
    }

    @Test func anExpiredTokenIsReplacedByANewOne() async throws {
        let key = JWTSigningKey.generateES384()
        let fhir = try await FHIRTestServer.start(smartClient: Self.register(key, tokenLifetime: 2))
        defer { fhir.stop() }
        let smart = try Self.writer(fhir, key: key)
        let server = ServerClient(baseURL: fhir.baseURL)

        let first = try await smart.authorization()
        #expect(try await smart.authorization() == first, "cached")
        #expect(try await server.request(.GET, "Patient", headers: [("Authorization", first)]).status == 200)
        try await Task.sleep(for: .milliseconds(2_200))
        #expect(try await server.request(.GET, "Patient", headers: [("Authorization", first)]).status == 401)
        let second = try await smart.authorization()
        #expect(second != first)
        #expect(try await server.request(.GET, "Patient", headers: [("Authorization", second)]).status == 200)
        #expect(await smart.tokenRequests == 2)
    }
}
