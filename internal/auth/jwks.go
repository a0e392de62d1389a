package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
)

// RSA key sizes we accept: below 2048 bits is weak, above 8192 only
// makes each verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// key returns the key kid names, fetching the JWKS when it is unknown
// or the one we have is older than JWKSMaxAge, but never more often than
// RefetchInterval.
func (v *JWTVerifier) key(ctx context.Context, kid string) (jwk, error) {
	if k, ok, fresh := v.cachedKey(kid); ok && fresh {
		return k, nil
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	k, ok, fresh := v.cachedKey(kid) // another goroutine may have fetched
	if ok && fresh {
		return k, nil
	}
	v.mu.RLock()
	tried, lastErr := v.tried, v.lastErr
	v.mu.RUnlock()
	now := v.now()
	if !tried.IsZero() && now.Sub(tried) < v.cfg.RefetchInterval && !now.Before(tried) {
		switch {
		case ok:
			return k, nil // stale, but too soon to ask again
		case lastErr != nil:
			return jwk{}, lastErr
		}
		return jwk{}, fmt.Errorf("%w %.64q", ErrUnknownKID, kid)
	}
	keys, err := v.fetch(ctx)
	v.mu.Lock()
	v.tried = now
	if err != nil {
		v.lastErr = err
	} else {
		v.keys, v.fetched, v.lastErr = keys, now, nil
	}
	v.mu.Unlock()
	if err != nil {
		if ok {
			return k, nil // keep using what we had while the IdP is away
		}
		return jwk{}, err
	}
	if k, ok = keys[kid]; !ok {
		return jwk{}, fmt.Errorf("%w %.64q", ErrUnknownKID, kid)
	}
	return k, nil
}

// Refresh fetches the JWKS now, whatever RefetchInterval says, and keeps
// it if it holds a usable key. Startup may call it to fail fast on a
// wrong JWKS URL; Verify does not need it.
func (v *JWTVerifier) Refresh(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	now := v.now()
	keys, err := v.fetch(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tried = now
	if err != nil {
		v.lastErr = err
		return err
	}
	v.keys, v.fetched, v.lastErr = keys, now, nil
	return nil
}

// cachedKey looks kid up in the last JWKS fetched, and reports whether
// that JWKS is younger than JWKSMaxAge.
func (v *JWTVerifier) cachedKey(kid string) (k jwk, ok, fresh bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok = v.keys[kid]
	age := v.now().Sub(v.fetched)
	return k, ok, age >= 0 && age < v.cfg.JWKSMaxAge
}

// fetch GETs and parses the JWKS. It ignores ctx's cancellation (but
// keeps its values) and has its own timeout: a fetch serves every request
// waiting for it, and a client that hangs up must not record a failure
// that refuses everyone until the next fetch may happen.
func (v *JWTVerifier) fetch(ctx context.Context) (map[string]jwk, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKSUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: status %d", ErrJWKSUnavailable, v.cfg.JWKSURL, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrJWKSUnavailable, v.cfg.JWKSURL, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("%w: GET %s: over %d bytes", ErrJWKSUnavailable, v.cfg.JWKSURL, maxJWKSBytes)
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrJWKSUnavailable, v.cfg.JWKSURL, err)
	}
	return keys, nil
}

// rawJWK is a JWK as RFC 7517 and 7518 spell it.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the signing keys of a JWKS by kid: RSA keys of
// 2048–8192 bits and EC keys on P-256. It skips keys of other types,
// keys for encryption, keys without a kid and keys that do not parse (one
// odd key must not lock everyone out), and fails if none is left.
func parseJWKS(b []byte) (map[string]jwk, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not JSON: %v", err)
	}
	keys := map[string]jwk{}
	for _, raw := range set.Keys {
		var r rawJWK
		if json.Unmarshal(raw, &r) != nil || r.Kid == "" || (r.Use != "" && r.Use != "sig") {
			continue
		}
		if _, dup := keys[r.Kid]; dup {
			continue // first one wins; a JWKS should not repeat a kid
		}
		var k jwk
		switch {
		case r.Kty == "RSA" && (r.Alg == "" || r.Alg == "RS256"):
			pub, err := rsaKey(r)
			if err != nil {
				continue
			}
			k = jwk{alg: r.Alg, rsa: pub}
		case r.Kty == "EC" && r.Crv == "P-256" && (r.Alg == "" || r.Alg == "ES256"):
			pub, err := ecKey(r)
			if err != nil {
				continue
			}
			k = jwk{alg: r.Alg, ec: pub}
		default:
			continue
		}
		keys[r.Kid] = k
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS has no usable signing key (RS256 of %d-%d bits, or ES256)", minRSABits, maxRSABits)
	}
	return keys, nil
}

func rsaKey(r rawJWK) (*rsa.PublicKey, error) {
	nb, err := b64.DecodeString(r.N)
	if err != nil {
		return nil, err
	}
	eb, err := b64.DecodeString(r.E)
	if err != nil {
		return nil, err
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits", bits)
	}
	if len(eb) == 0 || len(eb) > 4 {
		return nil, fmt.Errorf("RSA exponent of %d bytes", len(eb))
	}
	var e int
	for _, c := range eb {
		e = e<<8 | int(c)
	}
	if e < 3 || e%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d", e)
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

func ecKey(r rawJWK) (*ecdsa.PublicKey, error) {
	x, err := b64.DecodeString(r.X)
	if err != nil {
		return nil, err
	}
	y, err := b64.DecodeString(r.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("P-256 coordinates of %d and %d bytes", len(x), len(y))
	}
	point := append(append([]byte{4}, x...), y...)
	// ParseUncompressedPublicKey checks that the point is on the curve.
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
}
