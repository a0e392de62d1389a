// Package auth says who a request acts for: it turns a credential (an API
// key, a JWT, or API Gateway's authorizer context) into a [Principal]
// whose Tenant namespaces everything the request touches (see #13).
//
// It is self-contained and standard library only, so that every entry
// point (serve's HTTP handler, the Lambda adapter, the keys CLI) shares
// one implementation:
//
//   - The keys CLI builds a [Registry] over the configured session store
//     (redisstore and filestore both satisfy [KV]) and calls
//     [Registry.Create], [Registry.List] and [Registry.Revoke]; to feed a
//     static key file (LAMBDAGENT_API_KEYS) it prints [FileLine] of a
//     key. Startup reads that file with [ParseKeyFile] into
//     [RegistryConfig].Static.
//   - Startup picks the mode with [ParseMode] (LAMBDAGENT_AUTH), builds a
//     [Registry] or a [JWTVerifier] as the mode needs, and an
//     [Authenticator] with [New].
//   - The HTTP handler calls [Authenticator.Authenticate] before anything
//     else, answers an error with [Status] (401 or 403; 0 means an
//     internal failure, 503) and a WWW-Authenticate of [Challenge], and
//     otherwise passes the principal on with [WithPrincipal]; handlers
//     read it with [PrincipalFrom].
//   - The Lambda adapter, in mode apigw, puts the event's
//     requestContext.authorizer in the request context with
//     [WithAPIGatewayAuthorizer]; Authenticate reads it there, so the
//     handler needs no Lambda-specific path.
//
// API keys read lga_<id>_<secret>. The id is public and names the key;
// only a SHA-256 of the secret is stored. Verification caches store
// lookups for at most [DefaultCacheTTL], so a revocation is seen by every
// instance within 5 s.
//
// Errors tell 401 from 403 through sentinels (see errors.go): 401 when
// the caller is not authenticated, 403 only when a verified credential
// does not admit it here. No error message holds a secret or a token.
package auth
