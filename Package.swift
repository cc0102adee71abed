// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ehr-sync",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ehr-syncd", targets: ["SyncDaemon"]),
        .executable(name: "syncctl", targets: ["syncctl"]),
        .library(name: "SyncModel", targets: ["SyncModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // The domain: FHIR values, JSON, merge, plans and decisions, state machines, the control
        // protocol and its renderers. No storage, network or server framework.
        .target(
            name: "SyncModel",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strict
        ),
        // Storage: the encrypted replica's stores over one SQLite database.
        .target(
            name: "SyncStore",
            dependencies: [
                "SyncModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The engines that talk to the hosted EHR: the FHIR client, pull and replay.
        .target(
            name: "SyncEngine",
            dependencies: [
                "SyncModel", "SyncStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The practice-facing servers: local FHIR API, web viewer, control socket, metrics.
        .target(
            name: "SyncServer",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SyncDaemon",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine", "SyncServer",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "syncctl",
            dependencies: [
                "SyncModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "IngestBenchmark",
            dependencies: [
                "SyncModel", "SyncStore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Benchmarks/Ingest",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FleetBenchmark",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine", "SyncTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Fleet",
            swiftSettings: strict
        ),
        .target(
            name: "SyncTestSupport",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SyncTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SyncModelTests",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine", "SyncServer", "SyncTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["testdata"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "SyncModel", "SyncStore", "SyncEngine", "SyncServer", "SyncTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

// `make fuzz` only: the libFuzzer target over the decoders of untrusted input (Tests/Fuzz),
// built with -sanitize=fuzzer into its own scratch path.
if Context.environment["EHR_SYNC_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "Fuzz", dependencies: ["SyncModel"], path: "Tests/Fuzz", exclude: ["corpus"],
            swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]))
}
