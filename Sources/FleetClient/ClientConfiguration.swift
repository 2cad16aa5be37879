import Foundation

/// How to reach the High Mobility API and with which credentials.
public struct ClientConfiguration: Sendable {
    /// The API's base URL without a trailing slash, e.g. `https://sandbox.api.high-mobility.com`.
    public var baseURL: String
    /// The OAuth client id of the application.
    public var clientID: String
    /// The OAuth client secret.
    public var clientSecret: Secret
    /// How long to wait for a TCP (and TLS) connection.
    public var connectTimeout: Duration
    /// How long to wait for a whole response once the request is sent.
    public var requestTimeout: Duration
    /// Responses larger than this many bytes are refused without being buffered whole.
    public var maxResponseBytes: Int
    /// The same limit for the fleet list, which grows with the fleet (~200 bytes per vehicle).
    public var maxFleetListBytes: Int = 64 * 1024 * 1024
    /// Renew the access token this long before it expires.
    public var tokenRenewalMargin: Duration
    /// Which paths and bodies to use: the live platform's or the OpenAPI document's.
    public var pathFamily: PathFamily
    /// An HTTP(S) proxy to send requests through, or `nil` for direct connections.
    public var proxy: Proxy?
    /// Skip TLS certificate verification. Only for an emulator on a loopback address; the config
    /// loader refuses it for any other host.
    public var insecureSkipTLSVerify: Bool

    /// An HTTP CONNECT proxy.
    public struct Proxy: Sendable, Hashable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `http://host:port` (or `host:port`), as in `HTTPS_PROXY`.
        public init?(url: String) {
            var rest = Substring(url)
            for scheme in ["http://", "https://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
            while rest.hasSuffix("/") { rest = rest.dropLast() }
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard let hostPart = parts.first, !hostPart.isEmpty, parts.count <= 2 else { return nil }
            let port = parts.count == 2 ? Int(parts[1]) : 80
            guard let port, (1...65535).contains(port) else { return nil }
            self.init(host: String(hostPart), port: port)
        }

        /// The proxy to use for `baseURL` from `HTTPS_PROXY`/`https_proxy` (or `HTTP_PROXY` for an
        /// `http://` base URL), unless `NO_PROXY`/`no_proxy` lists its host (exact, `.suffix`, or `*`).
        public static func fromEnvironment(_ environment: [String: String], baseURL: String) -> Proxy? {
            let secure = baseURL.hasPrefix("https://")
            let names = secure ? ["HTTPS_PROXY", "https_proxy"] : ["HTTP_PROXY", "http_proxy"]
            guard let value = names.lazy.compactMap({ environment[$0] }).first(where: { !$0.isEmpty }) else {
                return nil
            }
            let host = ClientConfiguration.host(of: baseURL)
            let noProxy = (environment["NO_PROXY"] ?? environment["no_proxy"] ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            }
            for entry in noProxy where !entry.isEmpty {
                if entry == "*" || entry == host { return nil }
                let suffix = entry.hasPrefix(".") ? entry : "." + entry
                if host.hasSuffix(suffix) { return nil }
            }
            return Proxy(url: value)
        }
    }

    /// The lower-cased host of a URL (`https://user@Host:443/x` → `host`; `[::1]` → `::1`).
    public static func host(of url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<close]).lowercased()
        }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return rest.lowercased()
    }

    /// True when `url` points at this machine (`localhost`, `127.0.0.0/8`, `::1`).
    public static func isLoopback(_ url: String) -> Bool {
        let host = host(of: url)
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    public init(
        baseURL: String,
        clientID: String,
        clientSecret: Secret,
        connectTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(30),
        maxResponseBytes: Int = 4 * 1024 * 1024,
        tokenRenewalMargin: Duration = .seconds(60),
        pathFamily: PathFamily = .platform,
        proxy: Proxy? = nil,
        insecureSkipTLSVerify: Bool = false
    ) {
        self.pathFamily = pathFamily
        self.proxy = proxy
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
        self.tokenRenewalMargin = tokenRenewalMargin
    }
}
