public import Foundation

/// The daemon's configuration, read from a TOML file (see `config/ehr-sync.toml`).
///
/// Holds no secret: the replica key, the EHR token and the SMART private key are files
/// the configuration names.
public struct SyncConfiguration: Sendable, Equatable {
    public struct EHR: Sendable, Equatable {
        public var baseURL: URL
        public var bearerTokenFile: String?
        public var smart: SMART?
        /// The most requests a second (the adaptive rate's ceiling; the fixed rate).
        public var requestsPerSecond: Double = 20
        /// The fewest requests a second the adaptive rate goes down to.
        public var minRequestsPerSecond: Double = 0.2
        /// `adaptive` (AIMD on the EHR's answers) or `fixed` (always `requests_per_second`).
        public var rateControl: RateController.Policy = .adaptive
        public var connectTimeout: Double = 10
        public var requestTimeout: Double = 120
        public var maxResourceBytes: Int = 64 << 20
        /// Accept `http://` for an EHR off this machine (never on a real network).
        public var allowInsecureHTTP = false
    }

    /// SMART Backend Services client credentials (a signed JWT exchanged for a token).
    public struct SMART: Sendable, Equatable {
        public var clientID: String
        public var privateKeyFile: String
        public var keyID: String?
        public var tokenURL: URL
        public var scopes: String
    }

    public enum BulkExport: String, Sendable, Equatable, CaseIterable {
        case auto, system, group, off
    }

    /// `[sync] strategy`: how records are listed. `auto` chooses from the server's
    /// CapabilityStatement and answers.
    public enum Strategy: String, Sendable, Equatable, CaseIterable {
        case auto, export, search
        case perPatient = "per-patient"
    }

    public struct Sync: Sendable, Equatable {
        /// nil: discovered from the server (its CapabilityStatement and probes).
        public var resourceTypes: [String]?
        /// Types never mirrored (`[sync] exclude_types`).
        public var excludeTypes: Set<String> = TypeProbe.defaultExcluded
        public var strategy: Strategy = .auto
        /// Seconds between rounds of every patient on per-patient servers (the patients that
        /// matter now are asked every cycle).
        public var patientRound: Double = 900
        public var pollInterval: Double = 60
        public var pageSize: Int = 500
        public var bulkExport: BulkExport = .auto
        public var groupID: String?
        public var sweepInterval: Double = 21_600
        public var massDeletePercent: Double = 5
        public var massDeleteCount: Int = 500
        public var massDeleteFloor: Int = 10
        /// Seconds subtracted from the server-time cursor at each incremental cycle.
        public var overlap: Double = 120
        /// Origins (`https://files.ehr.example`) besides the EHR's that `$export` files may
        /// be fetched from.
        public var exportOrigins: [String] = []
    }

    /// `[replay]`: how queued local changes go back to the EHR.
    public struct Replay: Sendable, Equatable {
        /// Write a FHIR Provenance next to each replayed change.
        public var provenance = true
        /// Changes in flight at once.
        public var concurrency = 2
        /// Longest random wait before the first request once the EHR is back: the wait is
        /// drawn over a window that grows with the outage (``ReconnectionJitter``), at most
        /// this (spreads the load of many practices returning at once).
        public var startJitter: Double = 300
        /// Policy for types not listed in ``policies``.
        public var policy = ConflictPolicy.merge
        /// Per-type policies (`[replay.policies]`).
        public var policies: [String: ConflictPolicy] = [
            "AllergyIntolerance": .manual, "MedicationRequest": .manual,
        ]
    }

    /// `[local_api]`: the practice-side FHIR endpoint.
    public struct LocalAPI: Sendable, Equatable {
        /// `host:port`; loopback by default.
        public var listen = "127.0.0.1:8090"
        /// Credentials file: one `author token` pair a line (root- or service-owned, 0600/0400).
        public var tokenFile: String
        /// HTTPS with these PEM files (key 0600/0400).
        public var tlsCertificate: String?
        public var tlsKey: String?
        /// HTTPS with a certificate generated at first start (kept in the state directory).
        public var tlsSelfSigned = false
        /// More names the local API and viewer answer to (the `Host` header), besides
        /// localhost, the machine's name and its listen addresses (``AllowedHosts``).
        public var hostNames: [String] = []
        /// More local deletions than this within `deleteBurstWindow` seconds are held for an
        /// administrator (``LocalDeleteGuard``); 0 turns the guard off.
        public var deleteBurst = 100
        public var deleteBurstWindow: Double = 600

        /// Whether HTTPS is configured.
        public var usesTLS: Bool { tlsSelfSigned || tlsCertificate != nil }
    }

    /// `[web]`: the staff web viewer, served on the local API's listener.
    public struct Web: Sendable, Equatable {
        public var enabled = true
        /// Seconds without a request before a session ends.
        public var sessionIdleTimeout: Double = 900
        /// Seconds after sign-in when a session ends regardless.
        public var sessionAbsoluteTimeout: Double = 8 * 3600
    }

    /// The audit trail's unusual-reading alert and its outside witness.
    public struct Audit: Sendable, Equatable {
        /// More distinct patients than this, read by one account or token within the window, alerts.
        public var alertPatients = 30
        public var alertWindow: Double = 600
        /// Thresholds of their own, by account or token name.
        public var alertOverrides: [String: Int] = [:]
        /// Send the trail to the EHR as FHIR AuditEvents when it answers.
        public var export = true
        public init() {}
    }

    /// A second copy of what cannot be fetched again from the EHR (``Backup``).
    public struct Backup: Sendable, Equatable {
        /// Where (a USB disk, a NAS mount); nil: no backup.
        public var dir: String?
        /// Seconds between backups when something changed (a write burst also triggers one).
        public var interval: Double = 300
        public init() {}
    }

    public var ehr: EHR
    public var backup = Backup()
    public var audit = Audit()
    public var sync = Sync()
    public var web = Web()
    public var replay = Replay()
    /// Absent: no local endpoint.
    public var localAPI: LocalAPI?
    public var stateDirectory: String
    /// nil: the systemd credential `$CREDENTIALS_DIRECTORY/replica-key`.
    public var keyFile: String?
    public var controlSocket: String = "/run/ehr-sync/control.sock"
    /// System groups whose members may use `syncctl` as staff, or as administrators
    /// (``ControlAccessPolicy``).
    public var controlStaffGroup = "ehr-sync-staff"
    public var controlAdminGroup = "ehr-sync-admin"
    /// `host:port` on loopback for Prometheus `/metrics`; nil: not served.
    public var metricsListen: String?

    public init(ehr: EHR, stateDirectory: String, keyFile: String?) {
        self.ehr = ehr
        self.stateDirectory = stateDirectory
        self.keyFile = keyFile
    }

    /// `localhost`, `127.x.x.x` or `::1`.
    static func isLoopbackHost(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// Reads and validates a configuration file.
    public static func load(path: String) throws(ConfigError) -> SyncConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: nil, message: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(text, file: path)
    }

    /// Parses configuration text; `file` names it in error messages.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> SyncConfiguration {
        let root = try TOMLReader(text: text, file: file)
        try root.allowOnly([
            "ehr", "sync", "replica", "key", "control", "metrics", "replay", "local_api", "web", "audit", "backup",
        ])

        let ehrTable = try root.requiredTable("ehr")
        try ehrTable.allowOnly([
            "base_url", "bearer_token_file", "smart", "requests_per_second", "connect_timeout", "request_timeout",
            "max_resource_bytes", "allow_insecure_http", "rate_control", "min_requests_per_second",
        ])
        var ehr = EHR(baseURL: try ehrTable.requiredURL("base_url"))
        ehr.bearerTokenFile = try ehrTable.string("bearer_token_file")
        ehr.requestsPerSecond = try ehrTable.number("requests_per_second", in: 0.1...10_000) ?? ehr.requestsPerSecond
        ehr.minRequestsPerSecond =
            try ehrTable.number("min_requests_per_second", in: 0.01...10_000) ?? ehr.minRequestsPerSecond
        if ehr.minRequestsPerSecond > ehr.requestsPerSecond {
            throw ConfigError(
                file: file, key: ehrTable.keyName("min_requests_per_second"),
                message: "must not exceed requests_per_second (\(ehr.requestsPerSecond))")
        }
        if let mode = try ehrTable.string("rate_control") {
            guard let policy = RateController.Policy(rawValue: mode) else {
                throw ConfigError(
                    file: file, key: ehrTable.keyName("rate_control"),
                    message: "must be \"adaptive\" or \"fixed\", not \"\(mode)\"")
            }
            ehr.rateControl = policy
        }
        ehr.connectTimeout = try ehrTable.number("connect_timeout", in: 0.1...3600) ?? ehr.connectTimeout
        ehr.requestTimeout = try ehrTable.number("request_timeout", in: 1...86_400) ?? ehr.requestTimeout
        ehr.maxResourceBytes = try ehrTable.integer("max_resource_bytes", in: 1024...(1 << 34)) ?? ehr.maxResourceBytes
        ehr.allowInsecureHTTP = try ehrTable.bool("allow_insecure_http") ?? false
        // Health data and credentials never cross a network in clear.
        if !ehr.allowInsecureHTTP, let url = URLComponents(url: ehr.baseURL, resolvingAgainstBaseURL: false),
            url.scheme?.lowercased() == "http", !Self.isLoopbackHost(url.host ?? "")
        {
            throw ConfigError(
                file: file, key: "[ehr] base_url",
                message:
                    "http:// sends health data and the EHR's credentials in clear over the network: use https:// (or set allow_insecure_http = true for a test server)"
            )
        }
        if let smart = try ehrTable.table("smart") {
            try smart.allowOnly(["client_id", "private_key_file", "key_id", "token_url", "scopes"])
            ehr.smart = SMART(
                clientID: try smart.requiredString("client_id"),
                privateKeyFile: try smart.requiredString("private_key_file"),
                keyID: try smart.string("key_id"),
                tokenURL: try smart.requiredURL("token_url"),
                scopes: try smart.string("scopes") ?? "system/*.read")
            if ehr.bearerTokenFile != nil {
                throw ConfigError(
                    file: file, key: "[ehr] bearer_token_file",
                    message: "set either bearer_token_file or [ehr.smart], not both")
            }
        }

        let replica = try root.requiredTable("replica")
        try replica.allowOnly(["state_dir"])
        var config = SyncConfiguration(ehr: ehr, stateDirectory: try replica.requiredString("state_dir"), keyFile: nil)

        if let key = try root.table("key") {
            try key.allowOnly(["file"])
            config.keyFile = try key.requiredString("file")
        }
        if let control = try root.table("control") {
            try control.allowOnly(["socket", "staff_group", "admin_group"])
            config.controlSocket = try control.string("socket") ?? config.controlSocket
            for (key, path) in [
                ("staff_group", \SyncConfiguration.controlStaffGroup), ("admin_group", \.controlAdminGroup),
            ] {
                guard let name = try control.string(key) else { continue }
                guard (1...32).contains(name.utf8.count),
                    name.utf8.allSatisfy({ b in b > 32 && b < 127 && b != UInt8(ascii: ":") })
                else {
                    throw ConfigError(
                        file: file, key: control.keyName(key),
                        message: "a system group name: 1 to 32 printable characters, no spaces or ':'")
                }
                config[keyPath: path] = name
            }
        }
        if let metrics = try root.table("metrics") {
            try metrics.allowOnly(["listen"])
            if let listen = try metrics.string("listen") {
                do {
                    _ = try ListenAddress.parseLoopback(listen)
                } catch {
                    throw ConfigError(file: file, key: "[metrics] listen", message: "\(error)")
                }
                config.metricsListen = listen
            }
        }
        if let sync = try root.table("sync") {
            try sync.allowOnly([
                "resource_types", "poll_interval", "page_size", "bulk_export", "group_id", "sweep_interval",
                "mass_delete_percent", "mass_delete_count", "mass_delete_floor", "overlap", "export_origins",
                "exclude_types", "strategy", "patient_round",
            ])
            var s = Sync()
            if let types = try sync.stringArray("resource_types") {
                for type in types where !FHIRID.isValidType(type) {
                    throw ConfigError(
                        file: file, key: sync.keyName("resource_types"),
                        message: "\"\(type)\" is not a FHIR resource type name")
                }
                s.resourceTypes = types
            }
            if let types = try sync.stringArray("exclude_types") {
                for type in types where !FHIRID.isValidType(type) {
                    throw ConfigError(
                        file: file, key: sync.keyName("exclude_types"),
                        message: "\"\(type)\" is not a FHIR resource type name")
                }
                s.excludeTypes = Set(types)
            }
            if let text = try sync.string("strategy") {
                guard let value = Strategy(rawValue: text) else {
                    throw ConfigError(
                        file: file, key: sync.keyName("strategy"),
                        message:
                            "expected one of \(Strategy.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(ControlRequestError.printable(text))\""
                    )
                }
                s.strategy = value
            }
            s.patientRound = try sync.number("patient_round", in: 0...86_400) ?? s.patientRound
            s.pollInterval = try sync.number("poll_interval", in: 1...86_400) ?? s.pollInterval
            s.pageSize = try sync.integer("page_size", in: 1...10_000) ?? s.pageSize
            if let mode = try sync.string("bulk_export") {
                guard let value = BulkExport(rawValue: mode) else {
                    throw ConfigError(
                        file: file, key: sync.keyName("bulk_export"),
                        message:
                            "expected one of \(BulkExport.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(mode)\""
                    )
                }
                s.bulkExport = value
            }
            s.groupID = try sync.string("group_id")
            if let group = s.groupID, !FHIRID.isValid(group) {
                throw ConfigError(
                    file: file, key: sync.keyName("group_id"), message: "not a FHIR id (the Group's id, without Group/)"
                )
            }
            if s.bulkExport == .group, s.groupID == nil {
                throw ConfigError(
                    file: file, key: sync.keyName("group_id"), message: "required when bulk_export = \"group\"")
            }
            s.sweepInterval = try sync.number("sweep_interval", in: 0...(86_400 * 365)) ?? s.sweepInterval
            s.massDeletePercent = try sync.number("mass_delete_percent", in: 0...100) ?? s.massDeletePercent
            s.massDeleteCount = try sync.integer("mass_delete_count", in: 0...Int.max) ?? s.massDeleteCount
            s.massDeleteFloor = try sync.integer("mass_delete_floor", in: 0...Int.max) ?? s.massDeleteFloor
            s.overlap = try sync.number("overlap", in: 0...86_400) ?? s.overlap
            s.exportOrigins = try sync.stringArray("export_origins") ?? []
            for origin in s.exportOrigins {
                guard let url = URL(string: origin), url.scheme == "https" || url.scheme == "http", url.host != nil
                else {
                    throw ConfigError(
                        file: file, key: "[sync] export_origins",
                        message:
                            "\"\(ControlRequestError.printable(origin))\" is not an origin like https://files.ehr.example"
                    )
                }
            }
            config.sync = s
        }
        if let replay = try root.table("replay") {
            try replay.allowOnly(["provenance", "concurrency", "start_jitter", "policy", "policies"])
            var r = Replay()
            r.provenance = try replay.bool("provenance") ?? r.provenance
            r.concurrency = try replay.integer("concurrency", in: 1...64) ?? r.concurrency
            r.startJitter = try replay.number("start_jitter", in: 0...3600) ?? r.startJitter
            func policy(_ table: TOMLReader, _ key: String) throws(ConfigError) -> ConflictPolicy? {
                guard let text = try table.string(key) else { return nil }
                guard let value = ConflictPolicy(rawValue: text) else {
                    throw ConfigError(
                        file: file, key: table.keyName(key),
                        message:
                            "expected one of \(ConflictPolicy.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(text)\""
                    )
                }
                return value
            }
            r.policy = try policy(replay, "policy") ?? r.policy
            if let table = try replay.table("policies") {
                var policies: [String: ConflictPolicy] = [:]
                for type in table.keys {
                    guard FHIRID.isValidType(type) else {
                        throw ConfigError(
                            file: file, key: table.keyName(type),
                            message: "\"\(type)\" is not a FHIR resource type name")
                    }
                    policies[type] = try policy(table, type)
                }
                r.policies = policies
            }
            config.replay = r
        }
        if let local = try root.table("local_api") {
            try local.allowOnly([
                "listen", "token_file", "tls_certificate", "tls_key", "tls_self_signed", "host_names", "delete_burst",
                "delete_burst_window",
            ])
            var api = LocalAPI(tokenFile: try local.requiredString("token_file"))
            api.tlsCertificate = try local.string("tls_certificate")
            api.tlsKey = try local.string("tls_key")
            api.tlsSelfSigned = try local.bool("tls_self_signed") ?? false
            api.hostNames = try local.stringArray("host_names") ?? []
            api.deleteBurst = try local.integer("delete_burst", in: 0...1_000_000) ?? api.deleteBurst
            api.deleteBurstWindow = try local.number("delete_burst_window", in: 1...86_400) ?? api.deleteBurstWindow
            for name in api.hostNames where AllowedHosts.host(of: name) == nil {
                throw ConfigError(
                    file: file, key: "[local_api] host_names",
                    message: "\"\(ControlRequestError.printable(name))\" is not a host name or address")
            }
            if (api.tlsCertificate == nil) != (api.tlsKey == nil) {
                throw ConfigError(
                    file: file, key: "[local_api] tls_certificate", message: "set both tls_certificate and tls_key")
            }
            if api.tlsSelfSigned && api.tlsCertificate != nil {
                throw ConfigError(
                    file: file, key: "[local_api] tls_self_signed",
                    message: "set either tls_self_signed or tls_certificate/tls_key, not both")
            }
            if let listen = try local.string("listen") {
                let address: ListenAddress
                do {
                    address = try ListenAddress.parse(listen)
                } catch {
                    throw ConfigError(file: file, key: "[local_api] listen", message: "\(error)")
                }
                if !address.isLoopback && !api.usesTLS {
                    throw ConfigError(
                        file: file, key: "[local_api] listen",
                        message:
                            "\(listen) is reachable from the network: set tls_self_signed = true or tls_certificate and tls_key (HTTPS is required beyond loopback)"
                    )
                }
                api.listen = listen
            }
            config.localAPI = api
        }
        if let audit = try root.table("audit") {
            try audit.allowOnly(["alert_patients", "alert_window", "alert_overrides", "export"])
            var a = Audit()
            a.alertPatients = try audit.integer("alert_patients", in: 1...1_000_000) ?? a.alertPatients
            a.alertWindow = try audit.number("alert_window", in: 10...(7 * 86_400)) ?? a.alertWindow
            a.export = try audit.bool("export") ?? a.export
            if let overrides = try audit.table("alert_overrides") {
                for name in overrides.keys {
                    guard let limit = try overrides.integer(name, in: 1...1_000_000) else { continue }
                    a.alertOverrides[name] = limit
                }
            }
            config.audit = a
        }
        if let backup = try root.table("backup") {
            try backup.allowOnly(["dir", "interval"])
            var b = Backup()
            if let dir = try backup.string("dir") {
                guard dir.hasPrefix("/") else {
                    throw ConfigError(file: file, key: "[backup] dir", message: "must be an absolute path")
                }
                guard dir != config.stateDirectory, !dir.hasPrefix(config.stateDirectory + "/") else {
                    throw ConfigError(
                        file: file, key: "[backup] dir",
                        message: "must be on another disk than the state directory (a USB disk, a NAS mount)")
                }
                b.dir = dir
            }
            b.interval = try backup.number("interval", in: 10...86_400) ?? b.interval
            config.backup = b
        }
        if let web = try root.table("web") {
            try web.allowOnly(["enabled", "session_idle_timeout", "session_absolute_timeout"])
            var w = Web()
            w.enabled = try web.bool("enabled") ?? w.enabled
            w.sessionIdleTimeout = try web.number("session_idle_timeout", in: 1...86_400) ?? w.sessionIdleTimeout
            w.sessionAbsoluteTimeout =
                try web.number("session_absolute_timeout", in: 1...(7 * 86_400)) ?? w.sessionAbsoluteTimeout
            config.web = w
        }
        return config
    }
}

/// A configuration error: which file, which key, what was expected.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    /// `[table] key`, or nil for the whole file.
    public var key: String?
    public var message: String

    public init(file: String, key: String?, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        if let key { return "\(file): \(key): \(message)" }
        return "\(file): \(message)"
    }
}
