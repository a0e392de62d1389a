package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for a zero [JWTConfig].
const (
	DefaultLeeway = 60 * time.Second
	// DefaultFetchTimeout bounds one JWKS fetch.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultRefetchInterval is the least time between two JWKS fetches,
	// so tokens with made-up kids cannot make us hammer the IdP.
	DefaultRefetchInterval = 10 * time.Second
	// DefaultJWKSMaxAge is how long a fetched JWKS is used before it is
	// fetched again, so a key the IdP withdrew stops working.
	DefaultJWKSMaxAge = time.Hour
)

// maxJWKSBytes bounds a JWKS document; real ones are a few KB.
const maxJWKSBytes = 1 << 20

// JWTConfig configures a [JWTVerifier]. A zero field means its default.
type JWTConfig struct {
	// JWKSURL is where the IdP publishes its signing keys, such as
	// https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json.
	// Required; https, or http to a loopback address (for tests).
	JWKSURL string
	// Issuer must equal the token's iss. Required.
	Issuer string
	// Audience must be in the token's aud (a string or an array). A token
	// with no aud may instead carry it as client_id, as Cognito access
	// tokens do; API Gateway's JWT authorizer accepts the same. Required:
	// without it, any token the IdP issued for any application would do.
	Audience string
	// TenantClaim names the claim holding the tenant, a string that must
	// pass [ValidTenant]. Empty means DefaultTenantClaim ("tenant"); for
	// a Cognito custom attribute, "custom:tenant".
	TenantClaim string
	// Leeway is the clock skew allowed on exp and nbf. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration
	// HTTPClient fetches the JWKS. Nil means a client with FetchTimeout.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RefetchInterval is the least time between JWKS fetches. Zero means
	// DefaultRefetchInterval.
	RefetchInterval time.Duration
	// JWKSMaxAge is how long a fetched JWKS is trusted. Zero means
	// DefaultJWKSMaxAge.
	JWKSMaxAge time.Duration
}

// A JWTVerifier checks JWTs (compact JWS, RS256 or ES256) from one issuer
// against its JWKS, which it fetches on first use, again when a token
// names a kid it does not know (at most once per RefetchInterval), and
// again after JWKSMaxAge. It is safe for concurrent use.
type JWTVerifier struct {
	cfg JWTConfig
	now func() time.Time // time.Now; tests move it

	// fetchMu makes one goroutine fetch while the others wait for its
	// result rather than fetch too.
	fetchMu sync.Mutex

	mu sync.RWMutex
	// keys, fetched (last successful fetch), tried (last attempt) and
	// lastErr (its error, if it failed) are guarded by mu.
	keys    map[string]jwk
	fetched time.Time
	tried   time.Time
	lastErr error
}

// NewJWTVerifier returns a JWTVerifier for cfg. It does no I/O.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.JWKSURL == "" || cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: JWT verification needs a JWKS URL, an issuer and an audience")
	}
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS URL: %w", err)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname())) {
		return nil, fmt.Errorf("auth: JWKS URL must be https (http only to a loopback address), not %q", u.Scheme)
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	cfg.Leeway = max(cfg.Leeway, 0)
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.FetchTimeout}
	}
	return &JWTVerifier{cfg: cfg, now: time.Now}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// jwsHeader is the JOSE header we read.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

var b64 = base64.RawURLEncoding.Strict()

// Verify checks token and returns its principal. Checks run in this
// order, and the first failure is returned: form and alg
// ([ErrMalformed]), signing key ([ErrUnknownKID]), signature
// ([ErrBadSignature]), iss ([ErrWrongIssuer]), exp ([ErrExpired]), nbf
// ([ErrNotYetValid]), aud ([ErrWrongAudience]), tenant ([ErrForbidden]).
// Nothing of the payload is believed before the signature verifies. If
// the JWKS cannot be fetched, the error wraps [ErrJWKSUnavailable].
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	if len(token) > MaxTokenBytes {
		return Principal{}, fmt.Errorf("%w: JWT longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return Principal{}, fmt.Errorf("%w: JWT is not three dot-separated parts", ErrMalformed)
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: JWT header is not base64url", ErrMalformed)
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return Principal{}, fmt.Errorf("%w: JWT header is not a JSON object", ErrMalformed)
	}
	if h.Alg != "RS256" && h.Alg != "ES256" {
		return Principal{}, fmt.Errorf("%w: JWT alg %.16q not accepted (RS256, ES256)", ErrMalformed, h.Alg)
	}
	if h.Crit != nil {
		return Principal{}, fmt.Errorf("%w: JWT has critical header extensions", ErrMalformed)
	}
	if h.Kid == "" || len(h.Kid) > 256 {
		return Principal{}, fmt.Errorf("%w: JWT has no kid, or one over 256 bytes", ErrMalformed)
	}
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: JWT payload is not base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: JWT signature is not base64url", ErrMalformed)
	}
	k, err := v.key(ctx, h.Kid)
	if err != nil {
		return Principal{}, err
	}
	if err := k.verify(h.Alg, token[:len(h64)+1+len(p64)], sig); err != nil {
		return Principal{}, err
	}
	return v.checkClaims(payload)
}

// claims are the registered claims we check. Numbers stay json.Number so
// that no value is too large to read.
type claims struct {
	Iss      *string         `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	ClientID *string         `json:"client_id"`
	Exp      *json.Number    `json:"exp"`
	Nbf      *json.Number    `json:"nbf"`
}

func (v *JWTVerifier) checkClaims(payload []byte) (Principal, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil || all == nil {
		return Principal{}, fmt.Errorf("%w: JWT payload is not a JSON object", ErrMalformed)
	}
	var c claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return Principal{}, fmt.Errorf("%w: JWT registered claims have the wrong types", ErrMalformed)
	}
	if c.Iss == nil || *c.Iss != v.cfg.Issuer {
		return Principal{}, ErrWrongIssuer
	}
	now := float64(v.now().UnixNano()) / 1e9
	leeway := v.cfg.Leeway.Seconds()
	if c.Exp == nil {
		return Principal{}, fmt.Errorf("%w: JWT has no exp", ErrMalformed)
	}
	exp, err := strconv.ParseFloat(c.Exp.String(), 64)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: JWT exp is not a number", ErrMalformed)
	}
	if now > exp+leeway {
		return Principal{}, ErrExpired
	}
	if c.Nbf != nil {
		nbf, err := strconv.ParseFloat(c.Nbf.String(), 64)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: JWT nbf is not a number", ErrMalformed)
		}
		if now+leeway < nbf {
			return Principal{}, ErrNotYetValid
		}
	}
	if !v.audienceOK(c) {
		return Principal{}, ErrWrongAudience
	}
	var tenant string
	raw, ok := all[v.cfg.TenantClaim]
	if !ok {
		return Principal{}, fmt.Errorf("%w: JWT has no %.64q claim", ErrForbidden, v.cfg.TenantClaim)
	}
	if err := json.Unmarshal(raw, &tenant); err != nil {
		return Principal{}, fmt.Errorf("%w: JWT claim %.64q is not a string", ErrForbidden, v.cfg.TenantClaim)
	}
	if err := ValidTenant(tenant); err != nil {
		return Principal{}, fmt.Errorf("%w: JWT claim %.64q: %v", ErrForbidden, v.cfg.TenantClaim, err)
	}
	return Principal{Tenant: tenant, Subject: c.Sub, Method: MethodJWT}, nil
}

// audienceOK reports whether the configured audience is in aud, a string
// or an array of strings, or, with no aud, equals client_id.
func (v *JWTVerifier) audienceOK(c claims) bool {
	if len(c.Aud) == 0 || string(c.Aud) == "null" {
		return c.ClientID != nil && *c.ClientID == v.cfg.Audience
	}
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return one == v.cfg.Audience
	}
	var many []string
	if json.Unmarshal(c.Aud, &many) == nil {
		for _, a := range many {
			if a == v.cfg.Audience {
				return true
			}
		}
	}
	return false
}

// A jwk is a usable public key from the JWKS.
type jwk struct {
	alg string // "" when the JWKS does not pin one
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// verify checks sig over input with alg, which must fit the key.
func (k jwk) verify(alg, input string, sig []byte) error {
	if k.alg != "" && k.alg != alg {
		return fmt.Errorf("%w: JWT alg %s, key is for %s", ErrBadSignature, alg, k.alg)
	}
	sum := sha256.Sum256([]byte(input))
	switch {
	case alg == "RS256" && k.rsa != nil:
		if rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, sum[:], sig) != nil {
			return ErrBadSignature
		}
		return nil
	case alg == "ES256" && k.ec != nil:
		// JWS ES256 signatures are r and s, 32 bytes each (RFC 7518 §3.4),
		// not ASN.1.
		if len(sig) != 64 {
			return ErrBadSignature
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k.ec, sum[:], r, s) {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("%w: JWT alg %s does not fit the key's type", ErrBadSignature, alg)
}
