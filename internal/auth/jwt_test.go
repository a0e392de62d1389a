package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Keys are generated once per test binary: RSA generation is slow under
// -race.
var (
	rsaKey1 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsaKey2 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	ecKey1  = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

const (
	testIssuer   = "https://idp.example/pool"
	testAudience = "lambdagent-api"
)

// idp serves a JWKS over HTTP, as Cognito or any IdP does, and counts
// fetches.
type idp struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	jwks    []byte // guarded by mu
	status  int    // guarded by mu; 0 means 200
}

func newIdP(t testing.TB, keys map[string]crypto.PublicKey) *idp {
	p := &idp{}
	p.setKeys(keys)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.status != 0 {
			w.WriteHeader(p.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(p.jwks)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) setKeys(keys map[string]crypto.PublicKey) {
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	enc := base64.RawURLEncoding.EncodeToString
	for kid, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			set.Keys = append(set.Keys, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
				"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())})
		case *ecdsa.PublicKey:
			b, err := k.Bytes()
			if err != nil {
				panic(err)
			}
			set.Keys = append(set.Keys, map[string]string{"kty": "EC", "kid": kid, "crv": "P-256",
				"x": enc(b[1:33]), "y": enc(b[33:])})
		}
	}
	b, _ := json.Marshal(set)
	p.mu.Lock()
	p.jwks = b
	p.mu.Unlock()
}

func (p *idp) setStatus(s int) {
	p.mu.Lock()
	p.status = s
	p.mu.Unlock()
}

// sign makes a compact JWS of claims with header fields hdr (alg and kid
// at least), signed by key: an *rsa.PrivateKey, an *ecdsa.PrivateKey, or
// nil for an empty signature.
func sign(t testing.TB, hdr, claims map[string]any, key crypto.Signer) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	input := enc(hb) + "." + enc(cb)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	}
	return input + "." + enc(sig)
}

func newVerifier(t testing.TB, p *idp, c *clock, edit func(*JWTConfig)) *JWTVerifier {
	t.Helper()
	cfg := JWTConfig{JWKSURL: p.srv.URL + "/jwks.json", Issuer: testIssuer, Audience: testAudience}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewJWTVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.now = c.Now
	return v
}

// with returns a copy of m with the given fields set, or removed when
// the value is nil.
func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestJWTVerify(t *testing.T) {
	c := newClock()
	p := newIdP(t, map[string]crypto.PublicKey{"rsa1": &rsaKey1().PublicKey, "ec1": &ecKey1().PublicKey})
	v := newVerifier(t, p, c, nil)
	now := c.Now().Unix()
	good := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "user-1", "tenant": "acme",
		"iat": now, "exp": now + 3600}
	rs := map[string]any{"alg": "RS256", "kid": "rsa1", "typ": "JWT"}
	es := map[string]any{"alg": "ES256", "kid": "ec1"}
	acme := Principal{Tenant: "acme", Subject: "user-1", Method: MethodJWT}

	tampered := sign(t, rs, good, rsaKey1())
	parts := strings.Split(tampered, ".")
	evil, _ := json.Marshal(with(good, "tenant", "globex"))
	tampered = parts[0] + "." + base64.RawURLEncoding.EncodeToString(evil) + "." + parts[2]

	for _, tc := range []struct {
		name  string
		token string
		want  Principal
		err   error
	}{
		{"RS256", sign(t, rs, good, rsaKey1()), acme, nil},
		{"ES256", sign(t, es, good, ecKey1()), acme, nil},
		{"aud array", sign(t, rs, with(good, "aud", []string{"other", testAudience}), rsaKey1()), acme, nil},
		{"client_id instead of aud", sign(t, rs, with(good, "aud", nil, "client_id", testAudience), rsaKey1()), acme, nil},
		{"fractional exp", sign(t, rs, with(good, "exp", float64(now)+0.5), rsaKey1()), acme, nil},
		{"expired within leeway", sign(t, rs, with(good, "exp", now-30), rsaKey1()), acme, nil},
		{"nbf within leeway", sign(t, rs, with(good, "nbf", now+30), rsaKey1()), acme, nil},
		{"expired", sign(t, rs, with(good, "exp", now-61), rsaKey1()), Principal{}, ErrExpired},
		{"not yet valid", sign(t, rs, with(good, "nbf", now+120), rsaKey1()), Principal{}, ErrNotYetValid},
		{"huge exp", sign(t, rs, with(good, "exp", 1e300), rsaKey1()), acme, nil},
		{"no exp", sign(t, rs, with(good, "exp", nil), rsaKey1()), Principal{}, ErrMalformed},
		{"string exp", sign(t, rs, with(good, "exp", "tomorrow"), rsaKey1()), Principal{}, ErrMalformed},
		{"wrong audience", sign(t, rs, with(good, "aud", "other"), rsaKey1()), Principal{}, ErrWrongAudience},
		{"no audience", sign(t, rs, with(good, "aud", nil), rsaKey1()), Principal{}, ErrWrongAudience},
		{"wrong client_id", sign(t, rs, with(good, "aud", nil, "client_id", "other"), rsaKey1()), Principal{}, ErrWrongAudience},
		{"wrong issuer", sign(t, rs, with(good, "iss", "https://evil.example"), rsaKey1()), Principal{}, ErrWrongIssuer},
		{"no issuer", sign(t, rs, with(good, "iss", nil), rsaKey1()), Principal{}, ErrWrongIssuer},
		{"no tenant", sign(t, rs, with(good, "tenant", nil), rsaKey1()), Principal{}, ErrForbidden},
		{"bad tenant", sign(t, rs, with(good, "tenant", "a:{b}"), rsaKey1()), Principal{}, ErrForbidden},
		{"numeric tenant", sign(t, rs, with(good, "tenant", 7), rsaKey1()), Principal{}, ErrForbidden},
		{"signed by another key", sign(t, rs, good, rsaKey2()), Principal{}, ErrBadSignature},
		{"tampered payload", tampered, Principal{}, ErrBadSignature},
		{"RS256 header on an EC key", sign(t, with(rs, "kid", "ec1"), good, rsaKey1()), Principal{}, ErrBadSignature},
		{"ES256 header on an RSA key", sign(t, with(es, "kid", "rsa1"), good, ecKey1()), Principal{}, ErrBadSignature},
		{"alg none", sign(t, with(rs, "alg", "none"), good, nil), Principal{}, ErrMalformed},
		{"alg none, no signature part", strings.TrimSuffix(sign(t, with(rs, "alg", "none"), good, nil), "."), Principal{}, ErrMalformed},
		{"HS256", sign(t, with(rs, "alg", "HS256"), good, nil), Principal{}, ErrMalformed},
		{"crit", sign(t, with(rs, "crit", []string{"exp"}), good, rsaKey1()), Principal{}, ErrMalformed},
		{"no kid", sign(t, with(rs, "kid", nil), good, rsaKey1()), Principal{}, ErrMalformed},
		{"unknown kid", sign(t, with(rs, "kid", "rsa9"), good, rsaKey1()), Principal{}, ErrUnknownKID},
		{"padded", sign(t, rs, good, rsaKey1()) + "=", Principal{}, ErrMalformed},
		{"four parts", sign(t, rs, good, rsaKey1()) + ".x", Principal{}, ErrMalformed},
		{"garbage", "not.a.jwt", Principal{}, ErrMalformed},
		{"too long", sign(t, rs, with(good, "pad", strings.Repeat("x", MaxTokenBytes)), rsaKey1()), Principal{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
			if err != nil {
				if parts := strings.Split(tc.token, "."); len(parts) == 3 && len(parts[2]) > 8 && strings.Contains(err.Error(), parts[2]) {
					t.Errorf("error %q quotes the token", err)
				}
				if Status(err) == 0 {
					t.Errorf("Status(%v) = 0", err)
				}
			}
		})
	}
	if n := p.fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1 (the unknown kid came too soon to refetch)", n)
	}
}

// A token signed by a key the JWKS did not have at the last fetch is
// refused until the next fetch may happen, then accepted; a retired key
// stops working once the JWKS is older than JWKSMaxAge.
func TestJWTKeyRotation(t *testing.T) {
	c := newClock()
	p := newIdP(t, map[string]crypto.PublicKey{"k1": &rsaKey1().PublicKey})
	v := newVerifier(t, p, c, nil)
	claims := func() map[string]any {
		return map[string]any{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "exp": c.Now().Unix() + 3600}
	}
	tok := func(kid string, k crypto.Signer) string {
		return sign(t, map[string]any{"alg": "RS256", "kid": kid}, claims(), k)
	}
	step := func(name, token string, want error, fetches int64) {
		t.Helper()
		_, err := v.Verify(t.Context(), token)
		if !errors.Is(err, want) || (err == nil) != (want == nil) {
			t.Errorf("%s: Verify = %v, want %v", name, err, want)
		}
		if n := p.fetches.Load(); n != fetches {
			t.Errorf("%s: %d fetches, want %d", name, n, fetches)
		}
	}
	step("old key", tok("k1", rsaKey1()), nil, 1)
	p.setKeys(map[string]crypto.PublicKey{"k1": &rsaKey1().PublicKey, "k2": &rsaKey2().PublicKey})
	step("new key, too soon to refetch", tok("k2", rsaKey2()), ErrUnknownKID, 1)
	for range 10 {
		step("made-up kids do not refetch", tok("k-made-up", rsaKey2()), ErrUnknownKID, 1)
	}
	c.Add(DefaultRefetchInterval)
	step("new key after the interval", tok("k2", rsaKey2()), nil, 2)
	step("old key still in the set", tok("k1", rsaKey1()), nil, 2)
	p.setKeys(map[string]crypto.PublicKey{"k2": &rsaKey2().PublicKey})
	step("retired key, JWKS still fresh", tok("k1", rsaKey1()), nil, 2)
	c.Add(DefaultJWKSMaxAge)
	step("retired key once the JWKS is stale", tok("k1", rsaKey1()), ErrUnknownKID, 3)
	step("current key", tok("k2", rsaKey2()), nil, 3)

	// The IdP goes away: known keys keep working, and the failure is ours
	// (Status 0), not the caller's.
	p.setStatus(http.StatusInternalServerError)
	c.Add(DefaultJWKSMaxAge)
	step("IdP down, known key", tok("k2", rsaKey2()), nil, 4)
	c.Add(DefaultRefetchInterval)
	_, err := v.Verify(t.Context(), tok("k3", rsaKey2()))
	if !errors.Is(err, ErrJWKSUnavailable) || Status(err) != 0 {
		t.Errorf("IdP down, unknown kid: Verify = %v (status %d), want ErrJWKSUnavailable, status 0", err, Status(err))
	}
}

// A client that hangs up while its request fetches the JWKS must not
// leave a failure that refuses everyone else.
func TestJWTFetchOutlivesCaller(t *testing.T) {
	c := newClock()
	p := newIdP(t, map[string]crypto.PublicKey{"e1": &ecKey1().PublicKey})
	v := newVerifier(t, p, c, nil)
	tok := sign(t, map[string]any{"alg": "ES256", "kid": "e1"},
		map[string]any{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "exp": c.Now().Unix() + 60}, ecKey1())
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	v.Verify(gone, tok)
	if _, err := v.Verify(t.Context(), tok); err != nil || p.fetches.Load() != 1 {
		t.Errorf("Verify after a caller hung up = %v after %d fetches, want success after 1", err, p.fetches.Load())
	}
}

func TestJWTRefresh(t *testing.T) {
	c := newClock()
	p := newIdP(t, map[string]crypto.PublicKey{"e1": &ecKey1().PublicKey})
	v := newVerifier(t, p, c, nil)
	for i, want := range []bool{true, true, false} {
		if i == 2 {
			p.setStatus(http.StatusNotFound)
		}
		if err := v.Refresh(t.Context()); (err == nil) != want {
			t.Errorf("Refresh %d = %v, want ok %v", i, err, want)
		}
	}
	if n := p.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3: Refresh ignores RefetchInterval", n)
	}
}

func TestJWTFirstFetchFails(t *testing.T) {
	c := newClock()
	p := newIdP(t, nil)
	v := newVerifier(t, p, c, nil)
	tok := sign(t, map[string]any{"alg": "ES256", "kid": "x"}, map[string]any{"iss": testIssuer}, ecKey1())
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrJWKSUnavailable) {
		t.Errorf("Verify with an empty JWKS = %v, want ErrJWKSUnavailable", err)
	}
	// The failure is remembered until the next fetch may happen.
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrJWKSUnavailable) || p.fetches.Load() != 1 {
		t.Errorf("second Verify = %v after %d fetches, want ErrJWKSUnavailable after 1", err, p.fetches.Load())
	}
}

func TestNewJWTVerifier(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		ok   bool
	}{
		{"https", JWTConfig{JWKSURL: "https://idp.example/jwks.json", Issuer: "i", Audience: "a"}, true},
		{"loopback http", JWTConfig{JWKSURL: "http://127.0.0.1:8080/jwks", Issuer: "i", Audience: "a"}, true},
		{"remote http", JWTConfig{JWKSURL: "http://idp.example/jwks.json", Issuer: "i", Audience: "a"}, false},
		{"no URL", JWTConfig{Issuer: "i", Audience: "a"}, false},
		{"no issuer", JWTConfig{JWKSURL: "https://idp.example/jwks.json", Audience: "a"}, false},
		{"no audience", JWTConfig{JWKSURL: "https://idp.example/jwks.json", Issuer: "i"}, false},
	} {
		if _, err := NewJWTVerifier(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: NewJWTVerifier = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecb, _ := ecKey1().PublicKey.Bytes()
	rsaJWK := func(kid string, k *rsa.PublicKey) string {
		return `{"kty":"RSA","kid":"` + kid + `","n":"` + enc(k.N.Bytes()) + `","e":"AQAB"}`
	}
	for _, tc := range []struct {
		name string
		jwks string
		kids []string
	}{
		{"rsa and ec", `{"keys":[` + rsaJWK("r", &rsaKey1().PublicKey) + `,{"kty":"EC","kid":"e","crv":"P-256","x":"` + enc(ecb[1:33]) + `","y":"` + enc(ecb[33:]) + `"}]}`, []string{"e", "r"}},
		{"skips a small RSA key", `{"keys":[` + rsaJWK("small", &small.PublicKey) + `,` + rsaJWK("r", &rsaKey1().PublicKey) + `]}`, []string{"r"}},
		{"skips encryption keys", `{"keys":[{"kty":"RSA","use":"enc","kid":"x","n":"` + enc(rsaKey2().N.Bytes()) + `","e":"AQAB"},` + rsaJWK("r", &rsaKey1().PublicKey) + `]}`, []string{"r"}},
		{"skips a point off the curve", `{"keys":[{"kty":"EC","kid":"bad","crv":"P-256","x":"` + enc(ecb[1:33]) + `","y":"` + enc(ecb[1:33]) + `"},` + rsaJWK("r", &rsaKey1().PublicKey) + `]}`, []string{"r"}},
		{"skips HS256 and oct", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},` + rsaJWK("r", &rsaKey1().PublicKey) + `]}`, []string{"r"}},
		{"skips an even exponent", `{"keys":[{"kty":"RSA","kid":"x","n":"` + enc(rsaKey2().N.Bytes()) + `","e":"Ag"},` + rsaJWK("r", &rsaKey1().PublicKey) + `]}`, []string{"r"}},
		{"nothing usable", `{"keys":[` + rsaJWK("small", &small.PublicKey) + `]}`, nil},
		{"not JSON", `<html>`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tc.jwks))
			if (err != nil) != (tc.kids == nil) {
				t.Fatalf("parseJWKS = %v", err)
			}
			var kids []string
			for kid := range keys {
				kids = append(kids, kid)
			}
			if diff := cmp.Diff(tc.kids, kids, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("kids (-want +got):\n%s", diff)
			}
		})
	}
}
