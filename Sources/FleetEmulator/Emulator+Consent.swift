import Crypto
import FleetModel
import Foundation

/// What the emulator keeps of the OAuth consent flow (`authorization_code` and `refresh_token`).
struct ConsentState {
    /// An authorization code given to the owner's browser: single use, for a few minutes.
    struct Code {
        var clientID: String
        var redirectURI: String?
        var challenge: String?
        var vin: VIN
        var scope: String
        var expiresAt: Timestamp
    }

    /// An owner's consent for one vehicle: what its tokens give access to.
    struct Grant {
        var vin: VIN
        var scope: String
        var createdAt: Timestamp
        /// When it becomes `approved` (`pending` before); the creation time when approval is immediate.
        var approvedAt: Timestamp
        var revoked = false
    }

    var codes: [String: Code] = [:]
    /// Grants by authorization id.
    var grants: [String: Grant] = [:]
    /// Live refresh tokens: the grant and when the token expires.
    var refreshTokens: [String: (grant: String, expiresAt: Timestamp)] = [:]
    /// Refresh tokens already used (rotated) or revoked: presenting one again is `invalid_grant`.
    var spentRefreshTokens: Set<String> = []
    /// Vehicle access tokens: the grant and when the token expires.
    var accessTokens: [String: (grant: String, expiresAt: Timestamp)] = [:]
    /// Successful `authorization_code` and `refresh_token` grants served, in order (for tests).
    var grantLog: [String] = []
    var counter: UInt64 = 0
}

/// The emulator's consent flow: the owner's authorization page, the `authorization_code` and
/// `refresh_token` grants of the token endpoint (both path families), vehicle tokens that reach
/// one vehicle, revocation, and `GET /v1/vehicleinfo`.
///
/// Codes live 10 minutes and work once; PKCE (`S256` or `plain`) is verified when the
/// authorization carried a challenge; a refresh token works once (it rotates with every refresh)
/// and expires after ``EmulatorConfiguration/refreshTokenLifetime``; a grant is `pending` for
/// ``EmulatorConfiguration/consentApprovalDelay`` (as BMW and MINI are until the owner approves).
extension Emulator {
    /// How long an authorization code is accepted.
    public static let authorizationCodeLifetime: Duration = .seconds(600)

    /// The vehicles that only consent reaches (no fleet clearance): ``EmulatorConfiguration/consentVINs``.
    public var consentVINs: [VIN] { configuration.consentVINs }

    /// `GET /oauth/new`: the owner's consent page, one approve button per consent vehicle.
    public func authorizationPage(query: [String: String]) -> Reply {
        if let problem = authorizationProblem(query) { return Self.oauthError(400, "invalid_request", problem) }
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
                .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        let hidden = query.sorted { $0.key < $1.key }.filter { $0.key != "vin" }.map {
            "<input type=\"hidden\" name=\"\(escaped($0.key))\" value=\"\(escaped($0.value))\">"
        }.joined()
        let vins = query["vin"].map { [$0] } ?? consentVINs.map(\.rawValue)
        let buttons = vins.map {
            "<button name=\"vin\" value=\"\(escaped($0))\">Allow access to \(escaped($0))</button>"
        }.joined(separator: "<br>")
        let page = """
            <!doctype html><html><head><title>Emulator: share your vehicle's data</title></head><body>
            <h1>Share your vehicle's data</h1><p>Application \(escaped(query["client_id"] ?? "")) asks for
            \(escaped(query["scope"] ?? "vehicle:data")).</p>
            <form method="post" action="/oauth/approve">\(hidden)\(buttons)</form></body></html>
            """
        return Reply(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: page)
    }

    /// `GET|POST /oauth/approve`: the owner allows access (the page's button, or a script with the
    /// same parameters and `vin`). Redirects (302) to `redirect_uri` with `code` and `state`, or
    /// answers `{"code", "state"}` when there is no `redirect_uri`.
    public func approveAuthorization(query: [String: String]) -> Reply {
        if let problem = authorizationProblem(query) { return Self.oauthError(400, "invalid_request", problem) }
        guard let vinText = query["vin"], let vin = VIN(vinText), consentVINs.contains(vin) else {
            return Self.oauthError(
                400, "invalid_request",
                "vin must be one of the emulator's consent vehicles: "
                    + consentVINs.map(\.rawValue).joined(separator: ", "))
        }
        let code = withState { state -> String in
            state.consent.counter += 1
            let code = "code." + String(state.consent.counter) + "." + UUID().uuidString.lowercased()
            state.consent.codes = state.consent.codes.filter { $0.value.expiresAt > now }
            state.consent.codes[code] = ConsentState.Code(
                clientID: query["client_id"] ?? "", redirectURI: query["redirect_uri"],
                challenge: query["code_challenge"].map { (query["code_challenge_method"] ?? "plain") + ":" + $0 },
                vin: vin, scope: query["scope"] ?? "vehicle:data", expiresAt: now.adding(Self.authorizationCodeLifetime)
            )
            return code
        }
        guard let redirect = query["redirect_uri"], var target = URLComponents(string: redirect) else {
            var members: [(key: String, value: JSONValue)] = [(key: "code", value: .string(code))]
            if let state = query["state"] { members.append((key: "state", value: .string(state))) }
            return Reply(
                status: 200, headers: [("Content-Type", "application/json")],
                body: Self.encode(.object(JSONObject(members: members))))
        }
        var items = target.queryItems ?? []
        items.append(URLQueryItem(name: "code", value: code))
        if let state = query["state"] { items.append(URLQueryItem(name: "state", value: state)) }
        target.queryItems = items
        return Reply(status: 302, headers: [("Location", target.string ?? redirect)], body: "")
    }

    /// Why an authorization request is refused, or `nil`.
    private func authorizationProblem(_ query: [String: String]) -> String? {
        guard query["response_type"] == "code" else { return "response_type must be code" }
        guard query["client_id"] == configuration.clientID else { return "client_id is invalid" }
        if let method = query["code_challenge_method"], method != "S256", method != "plain" {
            return "code_challenge_method must be S256 or plain"
        }
        if let redirect = query["redirect_uri"], URLComponents(string: redirect)?.scheme == nil {
            return "redirect_uri is invalid"
        }
        return nil
    }

    /// The refusal of a consent grant request without `field` or `client_id`, or with a client id
    /// or secret the emulator does not accept; `nil` when the client may go on.
    private func clientRefusal(_ fields: [String: String], needs field: String) -> Reply? {
        guard let value = fields[field], !value.isEmpty, let clientID = fields["client_id"], !clientID.isEmpty else {
            return Self.oauthError(400, "invalid_request", "\(field) can't be blank, client_id can't be blank")
        }
        guard clientID == configuration.clientID else {
            return Self.oauthError(401, "invalid_client", "client_id is invalid")
        }
        if let secret = fields["client_secret"], secret != configuration.clientSecret {
            return Self.oauthError(401, "invalid_client", "client_secret is invalid")
        }
        return nil
    }

    /// The `authorization_code` grant of the token endpoint.
    func authorizationCodeGrant(_ fields: [String: String]) -> Reply {
        if let refusal = clientRefusal(fields, needs: "code") { return refusal }
        let code = fields["code"]!
        let clientID = fields["client_id"]!
        let now = self.now
        // The code is spent by this request whatever its outcome: a code works once.
        guard let entry = withState({ $0.consent.codes.removeValue(forKey: code) }), entry.expiresAt > now,
            entry.clientID == clientID
        else {
            return Self.oauthError(400, "invalid_grant", "code is invalid")
        }
        if let redirect = entry.redirectURI, fields["redirect_uri"] != redirect {
            return Self.oauthError(400, "invalid_grant", "redirect_uri does not match the authorization request")
        }
        if let challenge = entry.challenge {
            guard let verifier = fields["code_verifier"], Self.verifies(verifier, challenge: challenge) else {
                return Self.oauthError(400, "invalid_grant", "code_verifier does not match the code_challenge")
            }
        } else if fields["client_secret"] == nil {
            return Self.oauthError(400, "invalid_request", "client_secret or code_verifier is required")
        }
        let grantID = withState { state -> String in
            state.consent.counter += 1
            let id = "auth-" + String(state.consent.counter)
            state.consent.grants[id] = ConsentState.Grant(
                vin: entry.vin, scope: entry.scope, createdAt: now,
                approvedAt: now.adding(configuration.consentApprovalDelay))
            return id
        }
        return issueTokens(grant: grantID, log: "authorization_code")
    }

    /// The `refresh_token` grant (also accepted as `refresh`, as High Mobility's examples send it).
    func refreshTokenGrant(_ fields: [String: String]) -> Reply {
        if let refusal = clientRefusal(fields, needs: "refresh_token") { return refusal }
        let token = fields["refresh_token"]!
        let now = self.now
        let grant = withState { state -> String? in
            guard let live = state.consent.refreshTokens.removeValue(forKey: token) else { return nil }
            // Single use: this token is spent now, whether or not the refresh succeeds.
            state.consent.spentRefreshTokens.insert(token)
            guard live.expiresAt > now, state.consent.grants[live.grant].map({ !$0.revoked }) ?? false else {
                return nil
            }
            return live.grant
        }
        guard let grant else { return Self.oauthError(400, "invalid_grant", "refresh_token is invalid") }
        return issueTokens(grant: grant, log: "refresh_token")
    }

    /// A new access token and refresh token for `grant`.
    private func issueTokens(grant: String, log: String) -> Reply {
        let now = self.now
        let (access, refresh, entry) = withState { state -> (String, String, ConsentState.Grant) in
            state.consent.counter += 1
            let access = "emu.vehicle." + String(state.consent.counter) + "." + UUID().uuidString.lowercased()
            let refresh = "emu.refresh." + String(state.consent.counter) + "." + UUID().uuidString.lowercased()
            state.consent.accessTokens = state.consent.accessTokens.filter { $0.value.expiresAt > now }
            state.consent.accessTokens[access] = (grant, now.adding(configuration.consentTokenLifetime))
            state.consent.refreshTokens[refresh] = (grant, now.adding(configuration.refreshTokenLifetime))
            state.consent.grantLog.append(log)
            return (access, refresh, state.consent.grants[grant]!)
        }
        let body = JSONValue.object([
            "access_token": .string(access),
            "token_type": .string("bearer"),
            "expires_in": .number(Double(configuration.consentTokenLifetime.components.seconds)),
            "refresh_token": .string(refresh),
            "scope": .string(entry.scope),
            "status": .string(entry.approvedAt > now ? "pending" : "approved"),
            "authorization_id": .string(grant),
            "validity_start_date": .string(entry.createdAt.iso8601),
        ])
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
    }

    /// `DELETE /v1/access_tokens` (and `/v1/access_token`): revokes the grant of an access or
    /// refresh token (RFC 7009: an unknown token is not an error).
    public func revokeToken(_ fields: [String: String]) -> Reply {
        guard let token = fields["token"], !token.isEmpty else {
            return Self.oauthError(400, "invalid_request", "token can't be blank")
        }
        guard fields["client_id"] == configuration.clientID else {
            return Self.oauthError(401, "invalid_client", "client_id is invalid")
        }
        withState { state in
            guard
                let grant = state.consent.accessTokens[token]?.grant ?? state.consent.refreshTokens[token]?.grant
            else { return }
            revoke(grant: grant, in: &state)
        }
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: "{}")
    }

    /// The owner (or the OEM) withdraws consent for `vin`: every grant of it is revoked, its tokens
    /// stop working, and a refresh is `invalid_grant`. Returns how many grants were revoked.
    @discardableResult
    public func withdrawConsent(vin: VIN) -> Int {
        withState { state in
            let grants = state.consent.grants.filter { $0.value.vin == vin && !$0.value.revoked }.map(\.key)
            for grant in grants { revoke(grant: grant, in: &state) }
            return grants.count
        }
    }

    private func revoke(grant: String, in state: inout State) {
        state.consent.grants[grant]?.revoked = true
        state.consent.accessTokens = state.consent.accessTokens.filter { $0.value.grant != grant }
        for (token, live) in state.consent.refreshTokens where live.grant == grant {
            state.consent.refreshTokens[token] = nil
            state.consent.spentRefreshTokens.insert(token)
        }
    }

    /// The successful `authorization_code` and `refresh_token` grants served so far, in order.
    public var consentGrantLog: [String] { withState { $0.consent.grantLog } }

    /// The VIN a valid vehicle access token reaches and whether its grant is approved, or `nil`
    /// when `token` is not a live vehicle token.
    func vehicleToken(_ token: String, now: Timestamp) -> (vin: VIN, approved: Bool)? {
        withState { state in
            guard let live = state.consent.accessTokens[token], live.expiresAt > now,
                let grant = state.consent.grants[live.grant], !grant.revoked
            else { return nil }
            return (grant.vin, grant.approvedAt <= now)
        }
    }

    /// `GET /v1/vehicleinfo`: the vehicle a vehicle access token belongs to.
    public func vehicleInfo(authorization: String?) -> Reply {
        let requestID = nextRequestID()
        guard let authorization, authorization.hasPrefix("Bearer "),
            let (vin, _) = vehicleToken(String(authorization.dropFirst(7)), now: now)
        else {
            return Self.apiError(401, "Not Authorized", "Invalid token", requestID: requestID)
        }
        let body = JSONValue.object(["vin": .string(vin.rawValue), "sub": .string(vin.rawValue)])
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
    }

    /// True when `verifier` answers `challenge` (`METHOD:value`, as the authorization stored it).
    static func verifies(_ verifier: String, challenge: String) -> Bool {
        guard let colon = challenge.firstIndex(of: ":") else { return false }
        let method = challenge[..<colon]
        let expected = String(challenge[challenge.index(after: colon)...])
        guard method == "S256" else { return verifier == expected }
        let digest = SHA256.hash(data: Data(verifier.utf8))
        let encoded = Data(digest).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return encoded == expected
    }
}
