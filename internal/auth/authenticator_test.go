package auth

import (
	"context"
	"crypto"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromAPIGatewayAuthorizer(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    map[string]any
		want Principal
		err  error
	}{
		{"HTTP API JWT authorizer", map[string]any{"jwt": map[string]any{"claims": map[string]any{"tenant": "acme", "sub": "u1"}, "scopes": nil}},
			Principal{Tenant: "acme", Subject: "u1", Method: MethodAPIGateway}, nil},
		{"HTTP API JWT claims as map[string]string", map[string]any{"jwt": map[string]any{"claims": map[string]string{"tenant": "acme"}}},
			Principal{Tenant: "acme", Method: MethodAPIGateway}, nil},
		{"HTTP API Lambda authorizer", map[string]any{"lambda": map[string]any{"tenant": "acme", "user": 7}},
			Principal{Tenant: "acme", Method: MethodAPIGateway}, nil},
		{"REST Cognito authorizer", map[string]any{"claims": map[string]any{"tenant": "acme", "sub": "u2"}},
			Principal{Tenant: "acme", Subject: "u2", Method: MethodAPIGateway}, nil},
		{"REST Lambda authorizer", map[string]any{"principalId": "svc", "tenant": "acme", "integrationLatency": 12.0},
			Principal{Tenant: "acme", Subject: "svc", Method: MethodAPIGateway}, nil},
		{"nil", nil, Principal{}, ErrMissingCredentials},
		{"empty", map[string]any{}, Principal{}, ErrMissingCredentials},
		{"IAM only", map[string]any{"iam": map[string]any{"accountId": "1"}}, Principal{}, ErrForbidden},
		{"JWT without tenant", map[string]any{"jwt": map[string]any{"claims": map[string]any{"sub": "u1"}}}, Principal{}, ErrForbidden},
		{"bad tenant", map[string]any{"lambda": map[string]any{"tenant": "a:b"}}, Principal{}, ErrForbidden},
		{"tenant not a string", map[string]any{"lambda": map[string]any{"tenant": 3.0}}, Principal{}, ErrForbidden},
		{"claims not a map", map[string]any{"jwt": "x", "tenant": "acme"}, Principal{Tenant: "acme", Method: MethodAPIGateway}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromAPIGatewayAuthorizer(tc.m)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("FromAPIGatewayAuthorizer = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := t.Context()
	kv, _ := backends[1].open(t)
	c := newClock()
	reg := newRegistry(t, kv, RegistryConfig{}, c)
	plain, k, err := reg.Create(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	p := newIdP(t, map[string]crypto.PublicKey{"ec1": &ecKey1().PublicKey})
	v := newVerifier(t, p, c, nil)
	jwt := sign(t, map[string]any{"alg": "ES256", "kid": "ec1"},
		map[string]any{"iss": testIssuer, "aud": testAudience, "tenant": "globex", "exp": c.Now().Unix() + 60}, ecKey1())

	newAuth := func(cfg Config) *Authenticator {
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	keys := newAuth(Config{Mode: MethodKey, Keys: reg})
	jwts := newAuth(Config{Mode: MethodJWT, JWT: v})
	none := newAuth(Config{Mode: MethodNone})
	apigw := newAuth(Config{Mode: MethodAPIGateway, TenantClaim: "org"})
	gwCtx := WithAPIGatewayAuthorizer(ctx, map[string]any{"lambda": map[string]any{"org": "initech"}})

	for _, tc := range []struct {
		name    string
		a       *Authenticator
		ctx     context.Context
		headers []string
		want    Principal
		err     error
	}{
		{"key", keys, ctx, []string{"Bearer " + plain}, Principal{Tenant: "acme", KeyID: k.ID, Method: MethodKey}, nil},
		{"key, no header", keys, ctx, nil, Principal{}, ErrMissingCredentials},
		{"key, two headers", keys, ctx, []string{"Bearer " + plain, "Bearer " + plain}, Principal{}, ErrMalformed},
		{"key, basic", keys, ctx, []string{"Basic Zm9vOmJhcg=="}, Principal{}, ErrMalformed},
		{"key, a JWT", keys, ctx, []string{"Bearer " + jwt}, Principal{}, ErrMalformed},
		{"jwt", jwts, ctx, []string{"Bearer " + jwt}, Principal{Tenant: "globex", Method: MethodJWT}, nil},
		{"jwt, an API key", jwts, ctx, []string{"Bearer " + plain}, Principal{}, ErrMalformed},
		{"none ignores credentials", none, ctx, []string{"Bearer whatever"}, Principal{Tenant: DefaultTenant, Method: MethodNone}, nil},
		{"apigw", apigw, gwCtx, nil, Principal{Tenant: "initech", Method: MethodAPIGateway}, nil},
		{"apigw ignores the header", apigw, ctx, []string{"Bearer " + plain}, Principal{}, ErrMissingCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(tc.ctx, "POST", "/agent", nil)
			for _, h := range tc.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := tc.a.Authenticate(tc.ctx, r)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Authenticate = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			pctx := WithPrincipal(ctx, got)
			if back, ok := PrincipalFrom(pctx); !ok || back != got {
				t.Errorf("PrincipalFrom = %v, %v", back, ok)
			}
		})
	}
	if _, ok := PrincipalFrom(ctx); ok {
		t.Error("PrincipalFrom of a bare context reports a principal")
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"none", Config{Mode: MethodNone}, true},
		{"apigw", Config{Mode: MethodAPIGateway}, true},
		{"no mode", Config{}, false},
		{"unknown mode", Config{Mode: "open"}, false},
		{"key without registry", Config{Mode: MethodKey}, false},
		{"jwt without verifier", Config{Mode: MethodJWT}, false},
	} {
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: New = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if m, err := ParseMode("jwt"); m != MethodJWT || err != nil {
		t.Errorf("ParseMode(jwt) = %q, %v", m, err)
	}
}
