import SyncModel
import Testing

/// `host:port` values of `[metrics] listen` and `[local_api] listen`.
@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9464", "127.0.0.1", 9464, true), ("127.0.0.2:80", "127.0.0.2", 80, true),
        ("[::1]:8090", "::1", 8090, true), ("localhost:8090", "localhost", 8090, true),
        ("0.0.0.0:8443", "0.0.0.0", 8443, false), ("192.168.1.10:8443", "192.168.1.10", 8443, false),
        ("[::]:8443", "::", 8443, false), ("[fe80::1]:1", "fe80::1", 1, false),
    ])
    func parsesHostPortAndTellsLoopback(_ text: String, _ host: String, _ port: Int, _ loopback: Bool) throws {
        let address = try ListenAddress.parse(text)
        #expect(address.host == host && address.port == port)
        #expect(address.isLoopback == loopback)
    }

    @Test(arguments: [
        "127.0.0.1", "::1:9464", "127.0.0.1:", ":9464", "127.0.0.1:0", "127.0.0.1:65536", "[::1]9464",
        "example.org:8090", "ehr-sync.local:443", "127.0.0.1:http", "",
    ])
    func refusesWhatIsNotAnIPAndAPort(_ text: String) {
        #expect(throws: ListenAddressError.self) { try ListenAddress.parse(text) }
    }
}
