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
    /// Renew the access token this long before it expires.
    public var tokenRenewalMargin: Duration

    public init(
        baseURL: String,
        clientID: String,
        clientSecret: Secret,
        connectTimeout: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(30),
        maxResponseBytes: Int = 4 * 1024 * 1024,
        tokenRenewalMargin: Duration = .seconds(60)
    ) {
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
