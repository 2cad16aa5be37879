import ArgumentParser
import FleetClient
import FleetConfiguration
import FleetConsent
import FleetModel
import Foundation
import Logging

/// `fleet-telemetry consent`: vehicles their owners connect (the `authorization_code` flow).
struct ConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent",
        abstract: "Connect vehicles through their owner's consent (OAuth authorization code with PKCE).",
        discussion: """
            The grants (each vehicle's access and refresh tokens) live in the consent state file \
            (consent.state_file; by default beside the database, DATABASE-consent.json, mode 0600), \
            never in the database. Tokens are never printed.
            """,
        subcommands: [URLCommand.self, Exchange.self, List.self, Revoke.self]
    )

    /// `consent url`: the authorization URL, kept as a pending request until its code comes back.
    struct URLCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "url",
            abstract: "Print the authorization URL for a vehicle's owner (with state and PKCE S256).",
            discussion: """
                The owner opens the URL and allows access; the consent page redirects to the redirect \
                URI with a code, which `consent exchange --code CODE --state STATE` turns into the \
                vehicle's grant. With --listen, this command listens on that address, receives the \
                redirect and completes the exchange itself.
                """)
        @OptionGroup var options: APIOptions
        @Option(name: .long, help: "The vehicle the consent is for (a hint to the consent page; else the API says).")
        var vin: String?
        @Option(name: .long, help: "Where the owner's browser is sent back (default: consent.redirect_uri).")
        var redirectURI: String?
        @Option(
            name: .long,
            help:
                "Listen on HOST:PORT for the redirect and complete the exchange (the redirect URI defaults to http://HOST:PORT/callback)."
        )
        var listen: String?
        @Option(name: .long, help: "With --listen: give up after this long (default 10m).")
        var timeout: String = "10m"

        func validate() throws {
            if let vin { _ = try parseVIN(vin) }
            if let listen {
                guard let address = DaemonConfiguration.ListenAddress(listen) else {
                    throw ValidationError("--listen takes HOST:PORT (e.g. 127.0.0.1:8765), got \(listen)")
                }
                // The code arrives here: never from another machine.
                guard ["127.0.0.1", "::1", "localhost"].contains(address.host) || address.host.hasPrefix("127.") else {
                    throw ValidationError(
                        "--listen takes a loopback address (127.0.0.1, ::1 or localhost), got \(listen)")
                }
            }
            guard let wait = DurationParser.parse(timeout), wait >= .seconds(1) else {
                throw ValidationError("--timeout takes a duration of at least 1s, such as 90s or 10m, got \(timeout)")
            }
        }

        func run() async throws {
            let vin = try vin.map(parseVIN)
            let listenAddress = listen.flatMap(DaemonConfiguration.ListenAddress.init)
            try await withClient(options) { configuration, client in
                let redirect =
                    redirectURI
                    ?? listenAddress.map {
                        "http://\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\($0.port)/callback"
                    }
                    ?? configuration.consent.redirectURI
                let pkce = PKCE()
                let state = PKCE.randomState()
                let file = GrantFile(path: configuration.consentStateFile)
                try grantFileStep {
                    try file.update { contents in
                        let now = SystemWallClock().now()
                        contents.pending.removeAll { now.duration(since: $0.createdAt) > GrantFile.pendingLifetime }
                        contents.pending.append(
                            PendingAuthorization(
                                state: state, codeVerifier: pkce.verifier, redirectURI: redirect, vin: vin,
                                createdAt: now))
                    }
                }
                let url = client.authorizationURL(
                    configuration.consent.authorizationURL(baseURL: configuration.api.baseURL), redirectURI: redirect,
                    scope: configuration.consent.scope, state: state, pkce: pkce, vin: vin)
                let shown =
                    options.json
                    ? JSONValue.object(
                        JSONObject(members: [
                            (key: "url", value: .string(url)), (key: "state", value: .string(state)),
                            (key: "redirect_uri", value: .string(redirect)),
                        ])
                    ).serialized(sortingKeys: false) + "\n" : url + "\n"
                guard let listenAddress else {
                    writeStandardOutput(shown)
                    printError(
                        "Open the URL as the vehicle's owner and allow access; the page redirects to \(redirect) with a code. Then: fleet-telemetry consent exchange --code CODE --state \(state)"
                    )
                    return
                }
                let path = URLComponents(string: redirect)?.path ?? "/callback"
                var logger = Logger(label: "fleet-telemetry.consent")
                // The listener's own stop is not news.
                logger.logLevel = .critical
                let result: ConsentCallbackResult?
                do {
                    // The URL is shown once the listener is bound: it is of no use otherwise.
                    result = try await ConsentCallback.wait(
                        host: listenAddress.host, port: listenAddress.port, path: path,
                        timeout: DurationParser.parse(timeout) ?? .seconds(600), expectedState: state, logger: logger
                    ) { _ in
                        writeStandardOutput(shown)
                        printError(
                            "Waiting for the owner's redirect on http://\(listenAddress.host):\(listenAddress.port)\(path) …"
                        )
                    }
                } catch {
                    let reason = "\(error)".contains("Address already in use") ? "the address is in use" : "\(error)"
                    printError(
                        "fleet-telemetry: cannot listen on \(listenAddress.host):\(listenAddress.port): \(reason); choose another --listen"
                    )
                    throw ExitStatus.failure
                }
                // The waiting request ends here unless its code is exchanged below.
                func forget() { try? file.update { $0.pending.removeAll { $0.state == state } } }
                switch result {
                case .none:
                    forget()
                    printError("fleet-telemetry: no redirect came within \(timeout); run consent url again")
                    throw ExitStatus.failure
                case .refused(let reason)?:
                    forget()
                    printError("fleet-telemetry: the owner did not grant access: \(printable(reason))")
                    throw ExitStatus.failure
                case .code(let code, let returned)?:
                    guard returned == state else {
                        printError("fleet-telemetry: the redirect's state does not match this request; nothing stored")
                        throw ExitStatus.failure
                    }
                    try await exchange(code: code, state: state, client: client, file: file, json: options.json)
                }
            }
        }
    }

    /// `consent exchange`: the code of a redirect, exchanged for the vehicle's grant.
    struct Exchange: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Exchange the code of the owner's redirect for the vehicle's grant, and store it.")
        @OptionGroup var options: APIOptions
        @Option(name: .long, help: "The code the consent page's redirect carried.") var code: String
        @Option(
            name: .long, help: "The redirect's state (needed when more than one authorization is waiting).")
        var state: String?

        func validate() throws {
            guard !code.isEmpty, code.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ValidationError("--code must be the code as the redirect carried it")
            }
        }

        func run() async throws {
            try await withClient(options) { configuration, client in
                try await exchange(
                    code: code, state: state, client: client, file: GrantFile(path: configuration.consentStateFile),
                    json: options.json)
            }
        }
    }

    /// `consent list`: each vehicle's grant.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the vehicles connected by consent: status, scope, token expiry, last refresh.")
        @Option(name: .long, help: "The config file (consent.state_file, database.path).")
        var config: String = "/etc/fleet-telemetry/config.yaml"
        @Flag(name: .long, help: "Print JSON lines instead of a table.") var json = false

        func run() throws {
            let configuration: DaemonConfiguration
            do {
                configuration = try ConfigLoader.load(path: config)
            } catch {
                printError("fleet-telemetry: \(error)")
                throw ExitStatus.config
            }
            let contents = try grantFileStep { try GrantFile(path: configuration.consentStateFile).read() }
            func time(_ timestamp: Timestamp?) -> String { timestamp?.iso8601 ?? "-" }
            if json {
                for grant in contents.grants {
                    printJSON(
                        .object(
                            JSONObject(members: [
                                (key: "vin", value: .string(grant.vin.rawValue)),
                                (key: "status", value: .string(grant.status.rawValue)),
                                (key: "scope", value: grant.scope.map(JSONValue.string) ?? .null),
                                (key: "access_expires_at", value: .string(grant.accessExpiresAt.iso8601)),
                                (key: "refreshable", value: .bool(grant.refreshToken != nil)),
                                (key: "granted_at", value: .string(grant.grantedAt.iso8601)),
                                (
                                    key: "last_refresh_at",
                                    value: grant.lastRefreshAt.map { .string($0.iso8601) } ?? .null
                                ),
                                (key: "last_error", value: grant.lastError.map(JSONValue.string) ?? .null),
                            ])))
                }
                return
            }
            if contents.grants.isEmpty {
                printError(
                    "No vehicle is connected by consent (\(configuration.consentStateFile)); see: fleet-telemetry consent url"
                )
            }
            printTable(
                ["VIN", "STATUS", "SCOPE", "TOKEN EXPIRES", "LAST REFRESH", "GRANTED", "LAST ERROR"],
                contents.grants.map {
                    [
                        $0.vin.rawValue, $0.status.rawValue, $0.scope ?? "-", time($0.accessExpiresAt),
                        time($0.lastRefreshAt), time($0.grantedAt), $0.lastError ?? "-",
                    ]
                })
        }
    }

    /// `consent revoke`: the grant revoked at the platform and forgotten.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a vehicle's grant at the API and remove it from the consent state file.")
        @OptionGroup var options: APIOptions
        @Argument(help: "The VIN.") var vin: String
        @Flag(name: .long, help: "Only remove the grant from the state file (when the API cannot be reached).")
        var localOnly = false

        func validate() throws { _ = try parseVIN(vin) }

        func run() async throws {
            let vin = try parseVIN(vin)
            try await withClient(options) { configuration, client in
                let file = GrantFile(path: configuration.consentStateFile)
                guard let grant = try grantFileStep({ try file.read() }).grant(of: vin) else {
                    printError("fleet-telemetry: \(vin) has no grant in \(file.path)")
                    throw ExitStatus.failure
                }
                // Out of the file first, so that a running daemon drops the vehicle rather than take
                // the revoked token's refusal for a withdrawn consent; put back if the API fails.
                try grantFileStep { try file.update { $0.grants.removeAll { $0.vin == vin } } }
                if !localOnly {
                    do {
                        if let refresh = grant.refreshToken {
                            try await client.revokeConsent(refresh, hint: "refresh_token")
                        } else {
                            try await client.revokeConsent(grant.accessToken, hint: "access_token")
                        }
                    } catch {
                        try? file.update { if $0.grant(of: vin) == nil { $0.put(grant) } }
                        throw error
                    }
                }
                if options.json {
                    printJSON(
                        .object(
                            JSONObject(members: [
                                (key: "vin", value: .string(vin.rawValue)),
                                (key: "revoked_at_api", value: .bool(!localOnly)),
                            ])))
                }
                printError(
                    localOnly ? "\(vin): grant removed (not revoked at the API)" : "\(vin): grant revoked and removed")
            }
        }
    }
}

/// Exchanges `code` for the waiting authorization of `state` (or the only one waiting), learns
/// the vehicle (the request's VIN, else `GET /v1/vehicleinfo`), and stores its grant.
private func exchange(
    code: String, state: String?, client: HighMobilityClient, file: GrantFile, json: Bool
) async throws {
    let waiting = try grantFileStep { try file.read().pending }
    let request: PendingAuthorization
    if let state {
        guard let found = waiting.first(where: { $0.state == state }) else {
            printError(
                "fleet-telemetry: no authorization with state \(state) is waiting in \(file.path) (it was used or is over 24 h old); run consent url again"
            )
            throw ExitStatus.failure
        }
        request = found
    } else {
        guard waiting.count == 1, let only = waiting.first else {
            printError(
                waiting.isEmpty
                    ? "fleet-telemetry: no authorization is waiting in \(file.path); run consent url first"
                    : "fleet-telemetry: \(waiting.count) authorizations are waiting; give the redirect's --state")
            throw ExitStatus.failure
        }
        request = only
    }
    let grant: ConsentGrant
    do {
        grant = try await client.exchangeAuthorizationCode(
            code, redirectURI: request.redirectURI, codeVerifier: request.codeVerifier)
    } catch {
        guard error.isInvalidGrant else { throw error }
        printError(
            "fleet-telemetry: the API refused the code (\(error.detail ?? "invalid_grant")): it expired, was used, or belongs to another authorization; run consent url again"
        )
        throw ExitStatus.failure
    }
    // The vehicle is the one the token belongs to; the `--vin` of the request was a hint only.
    let vin: VIN
    do {
        vin = try await client.vehicleInfo(token: grant.accessToken)
    } catch {
        guard let named = request.vin else { throw error }
        printError(
            "fleet-telemetry: warning: the API did not say which vehicle the token is for (\(error)); taken as \(named)"
        )
        vin = named
    }
    if let named = request.vin, named != vin {
        try? await client.revokeConsent(grant.refreshToken ?? grant.accessToken.value)
        printError(
            "fleet-telemetry: the owner granted access to \(vin), not to \(named) as asked; nothing stored (the grant was revoked)"
        )
        throw ExitStatus.failure
    }
    let stored = StoredGrant(vin: vin, grant: grant, grantedAt: SystemWallClock().now())
    // A grant this one replaces is revoked at the API: it must not stay live unseen.
    if let replaced = try? file.read().grant(of: vin) {
        try? await client.revokeConsent(replaced.refreshToken ?? replaced.accessToken)
    }
    try grantFileStep {
        try file.update { contents in
            contents.pending.removeAll { $0.state == request.state }
            contents.put(stored)
        }
    }
    if json {
        printJSON(
            .object(
                JSONObject(members: [
                    (key: "vin", value: .string(vin.rawValue)), (key: "status", value: .string(stored.status.rawValue)),
                    (key: "scope", value: stored.scope.map(JSONValue.string) ?? .null),
                    (key: "access_expires_at", value: .string(stored.accessExpiresAt.iso8601)),
                    (key: "refreshable", value: .bool(stored.refreshToken != nil)),
                ])))
    } else {
        writeStandardOutput(
            "\(vin): \(stored.status.rawValue), scope \(stored.scope ?? "-"), token valid until \(stored.accessExpiresAt.iso8601)"
                + (stored.refreshToken == nil ? " (no refresh token: connect again when it expires)" : "") + "\n")
    }
    if stored.status == .pending {
        printError("\(vin): the platform has not approved the consent yet; the daemon waits for it")
    }
}

/// `text` with control characters shown as U+FFFD: a redirect's error text never drives the terminal.
private func printable(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\u{FFFD}" : $0 }))
}

/// Runs a step on the consent state file; its error is one line on standard error and exit 74.
private func grantFileStep<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as GrantFileError {
        printError("fleet-telemetry: \(error)")
        throw ExitStatus.ioError
    }
}
