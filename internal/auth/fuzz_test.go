package auth

import (
	"crypto"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Seeds of our own live in testdata/fuzz/<FuzzName>/; the functions add a
// few more that depend on keys made at run time.

func FuzzParseBearer(f *testing.F) {
	plain, _, _ := newKey()
	f.Add("Bearer " + plain)
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := ParseBearer(header)
		if err != nil {
			if !errors.Is(err, ErrMissingCredentials) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseBearer error %v is neither missing nor malformed", err)
			}
			if len(err.Error()) > 128 {
				t.Fatalf("ParseBearer error of %d bytes may echo the header: %q", len(err.Error()), err)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenBytes || !strings.HasSuffix(header, " "+tok) || len(header) != len("Bearer ")+len(tok) {
			t.Fatalf("ParseBearer(%q) = %q", header, tok)
		}
		if again, err := ParseBearer("Bearer " + tok); again != tok || err != nil {
			t.Fatalf("ParseBearer does not round-trip %q: %q, %v", tok, again, err)
		}
		id, secret, err := ParseKey(tok)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseKey error %v is not ErrMalformed", err)
			}
			return
		}
		if "lga_"+id+"_"+secret != tok || validID(id) != nil {
			t.Fatalf("ParseKey(%q) = %q, %q", tok, id, secret)
		}
	})
}

// FuzzParseJWT checks that no token makes Verify panic, that every error
// is one of ours, and that nothing verifies but what our keys signed: the
// signing input (header.payload) of an accepted token must be one we
// signed.
func FuzzParseJWT(f *testing.F) {
	c := newClock()
	p := newIdP(f, map[string]crypto.PublicKey{"k1": &rsaKey1().PublicKey, "e1": &ecKey1().PublicKey})
	v := newVerifier(f, p, c, nil)
	now := c.Now().Unix()
	signed := map[string]bool{}
	for _, tc := range []struct {
		hdr    map[string]any
		claims map[string]any
		key    crypto.Signer
	}{
		{map[string]any{"alg": "RS256", "kid": "k1"}, map[string]any{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "exp": now + 60}, rsaKey1()},
		{map[string]any{"alg": "ES256", "kid": "e1"}, map[string]any{"iss": testIssuer, "aud": []string{testAudience}, "tenant": "acme", "exp": now + 60, "nbf": now}, ecKey1()},
		{map[string]any{"alg": "RS256", "kid": "k1"}, map[string]any{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "exp": now - 600}, rsaKey1()},
		{map[string]any{"alg": "ES256", "kid": "e1"}, map[string]any{"iss": testIssuer, "client_id": testAudience, "tenant": "a:b", "exp": now + 60}, ecKey1()},
	} {
		tok := sign(f, tc.hdr, tc.claims, tc.key)
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got, err := v.Verify(t.Context(), token)
		if err != nil {
			if Status(err) == 0 {
				t.Fatalf("Verify error %v has no status", err)
			}
			return
		}
		i := strings.LastIndexByte(token, '.')
		if i < 0 || !signed[token[:i]] {
			t.Fatalf("Verify accepted a token we never signed: %q", token)
		}
		if ValidTenant(got.Tenant) != nil || got.Method != MethodJWT {
			t.Fatalf("Verify = %+v", got)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	_, id, hash := newKey()
	f.Add([]byte(FileLine(Key{ID: id, Tenant: "acme", Name: "ci", Hash: hash, Limits: Limits{RPM: 1}})))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeyFile(data)
		if err != nil {
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("ParseKeyFile error %v is not ErrKeyFile", err)
			}
			return
		}
		var lines []string
		for _, k := range keys {
			if err := k.validate(); err != nil {
				t.Fatalf("ParseKeyFile returned an invalid key: %v", err)
			}
			lines = append(lines, FileLine(k))
		}
		again, err := ParseKeyFile([]byte(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("FileLine output does not parse: %v", err)
		}
		if diff := cmp.Diff(keys, again); diff != "" {
			t.Fatalf("FileLine round trip (-first +second):\n%s", diff)
		}
	})
}
