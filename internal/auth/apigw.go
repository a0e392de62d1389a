package auth

import "fmt"

// DefaultTenantClaim names the JWT claim, or authorizer context field,
// that holds the tenant.
const DefaultTenantClaim = "tenant"

// FromAPIGatewayAuthorizer returns the principal API Gateway vouches for
// in an event's requestContext.authorizer, with the tenant in the field
// named [DefaultTenantClaim]. It accepts, in this order:
//
//   - HTTP API (payload 2.0) JWT authorizer:
//     {"jwt": {"claims": {"tenant": "acme", "sub": "…"}, "scopes": […]}}
//   - HTTP API (payload 2.0) Lambda authorizer, simple or IAM response:
//     {"lambda": {"tenant": "acme"}}
//   - REST API Cognito user pool authorizer:
//     {"claims": {"tenant": "acme", "sub": "…"}}
//   - REST API (payload 1.0) Lambda authorizer context, flattened by API
//     Gateway to the top level: {"principalId": "…", "tenant": "acme"}
//
// Nested maps may be map[string]any or map[string]string (as
// aws-lambda-go's APIGatewayV2HTTPRequestContextAuthorizerJWTDescription
// has them); the tenant must be a string. No authorizer context at all
// is [ErrMissingCredentials] (the route has no authorizer: a deployment
// mistake, never trust it); one without a tenant, or with one that fails
// [ValidTenant], is [ErrForbidden].
//
// The caller must take the map from the event API Gateway delivered, never
// from anything a client sent.
func FromAPIGatewayAuthorizer(authorizer map[string]any) (Principal, error) {
	return fromAPIGateway(authorizer, DefaultTenantClaim)
}

func fromAPIGateway(m map[string]any, claim string) (Principal, error) {
	if len(m) == 0 {
		return Principal{}, fmt.Errorf("%w: empty API Gateway authorizer context", ErrMissingCredentials)
	}
	p := Principal{Method: MethodAPIGateway}
	var (
		tenant any
		found  bool
	)
	if jwt, ok := asMap(m["jwt"]); ok {
		if claims, ok := asMap(jwt["claims"]); ok {
			tenant, found = claims[claim]
			p.Subject, _ = claims["sub"].(string)
		}
	}
	if !found {
		if l, ok := asMap(m["lambda"]); ok {
			tenant, found = l[claim]
		}
	}
	if !found {
		if claims, ok := asMap(m["claims"]); ok {
			tenant, found = claims[claim]
			p.Subject, _ = claims["sub"].(string)
		}
	}
	if !found {
		tenant, found = m[claim]
		p.Subject, _ = m["principalId"].(string)
	}
	if !found {
		return Principal{}, fmt.Errorf("%w: API Gateway authorizer context has no %.64q", ErrForbidden, claim)
	}
	s, ok := tenant.(string)
	if !ok {
		return Principal{}, fmt.Errorf("%w: API Gateway authorizer %.64q is a %T, not a string", ErrForbidden, claim, tenant)
	}
	if err := ValidTenant(s); err != nil {
		return Principal{}, fmt.Errorf("%w: API Gateway authorizer %.64q: %v", ErrForbidden, claim, err)
	}
	p.Tenant = s
	return p, nil
}

// asMap reads a nested JSON object as decoded by encoding/json or as
// aws-lambda-go types it.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[string]string:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out, true
	}
	return nil, false
}
