package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// A Method says how a request was authenticated. It doubles as the mode
// of an [Authenticator] (LAMBDAGENT_AUTH).
type Method string

const (
	// MethodKey is an API key in Authorization: Bearer, checked by a
	// [Registry].
	MethodKey Method = "key"
	// MethodJWT is a JWT in Authorization: Bearer, checked by a
	// [JWTVerifier] against an IdP's JWKS.
	MethodJWT Method = "jwt"
	// MethodAPIGateway trusts API Gateway's authorizer context; see
	// [FromAPIGatewayAuthorizer].
	MethodAPIGateway Method = "apigw"
	// MethodNone authenticates nobody: every request acts for
	// [DefaultTenant]. It must be asked for explicitly.
	MethodNone Method = "none"
	// MethodIAM marks a request the Lambda adapter made from an event AWS
	// authenticated with IAM (SQS, EventBridge, a direct invocation): the
	// adapter puts its principal in the context with [WithPrincipal]. It
	// is never a mode: [ParseMode] refuses it.
	MethodIAM Method = "iam"
)

// ParseMode reads a LAMBDAGENT_AUTH value. Empty is an error, not a
// default: the caller decides what no setting means (serve refuses to
// start, #13).
func ParseMode(s string) (Method, error) {
	switch m := Method(s); m {
	case MethodKey, MethodJWT, MethodAPIGateway, MethodNone:
		return m, nil
	}
	return "", fmt.Errorf("auth: unknown mode %.32q (want key, jwt, apigw or none)", s)
}

// A Principal is who a request acts for. Tenant is always valid (see
// [ValidTenant]): every store key of the request is namespaced by it.
type Principal struct {
	// Tenant owns everything the request reads and writes.
	Tenant string
	// KeyID is the API key's public id (MethodKey); empty otherwise.
	KeyID string
	// Subject is the JWT's sub claim, or the authorizer's principal,
	// when there is one: for logs, never for access decisions. It comes
	// from the IdP unchecked; quote it, and cut it short, when logging.
	Subject string
	// Limits are the API key's own limits; zero for other methods.
	Limits Limits
	// Method is how the request was authenticated.
	Method Method
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, for handlers after
// authentication.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal [WithPrincipal] put in ctx, and
// whether there was one. A handler that finds none must refuse the
// request rather than assume a tenant.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

type authorizerKey struct{}

// WithAPIGatewayAuthorizer returns ctx carrying the authorizer context of
// an API Gateway event (requestContext.authorizer; see
// [FromAPIGatewayAuthorizer] for the shapes), for an [Authenticator] in
// mode apigw. Only the Lambda adapter should call it: a context value
// cannot come from the network, which is what makes trusting it safe.
func WithAPIGatewayAuthorizer(ctx context.Context, authorizer map[string]any) context.Context {
	return context.WithValue(ctx, authorizerKey{}, authorizer)
}

// Config says how an [Authenticator] authenticates. Mode picks one of the
// others.
type Config struct {
	// Mode is required.
	Mode Method
	// Keys verifies API keys; required for MethodKey.
	Keys *Registry
	// JWT verifies JWTs; required for MethodJWT.
	JWT *JWTVerifier
	// TenantClaim names the authorizer field that holds the tenant in mode
	// apigw. Empty means DefaultTenantClaim ("tenant").
	TenantClaim string
}

// An Authenticator turns a request into a [Principal], by one mode. It is
// safe for concurrent use.
type Authenticator struct {
	cfg Config
}

// New returns an Authenticator, or an error if cfg.Mode lacks what it
// needs.
func New(cfg Config) (*Authenticator, error) {
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.Mode == MethodKey && cfg.Keys == nil {
		return nil, errors.New("auth: mode key needs a key Registry")
	}
	if cfg.Mode == MethodJWT && cfg.JWT == nil {
		return nil, errors.New("auth: mode jwt needs a JWTVerifier")
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	return &Authenticator{cfg: cfg}, nil
}

// Mode returns the Authenticator's mode.
func (a *Authenticator) Mode() Method { return a.cfg.Mode }

// Authenticate returns who r acts for, or an error whose status [Status]
// gives (401 or 403; 0 for a failing store or JWKS, an internal error).
//
//   - key: Authorization: Bearer lga_…, verified by the Registry.
//   - jwt: Authorization: Bearer <JWT>, verified by the JWTVerifier.
//   - apigw: the authorizer context the Lambda adapter put in ctx with
//     [WithAPIGatewayAuthorizer]; a request without one (a plain HTTP
//     request) gets [ErrMissingCredentials].
//   - none: [DefaultTenant], whatever the request carries.
//
// A request with several Authorization headers is [ErrMalformed].
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	switch a.cfg.Mode {
	case MethodNone:
		return Principal{Tenant: DefaultTenant, Method: MethodNone}, nil
	case MethodAPIGateway:
		m, ok := ctx.Value(authorizerKey{}).(map[string]any)
		if !ok {
			return Principal{}, fmt.Errorf("%w: no API Gateway authorizer context", ErrMissingCredentials)
		}
		return fromAPIGateway(m, a.cfg.TenantClaim)
	}
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		return Principal{}, fmt.Errorf("%w: %d Authorization headers", ErrMalformed, len(hs))
	}
	var h string
	if len(hs) == 1 {
		h = hs[0]
	}
	tok, err := ParseBearer(h)
	if err != nil {
		return Principal{}, err
	}
	if a.cfg.Mode == MethodJWT {
		return a.cfg.JWT.Verify(ctx, tok)
	}
	return a.cfg.Keys.Verify(ctx, tok)
}
