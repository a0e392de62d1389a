package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestValidTenant(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"default", true},
		{"acme-corp_1.eu", true},
		{"A", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a:b", false},
		{"{acme}", false},
		{"a b", false},
		{"a/b", false},
		{"é", false},
		{"a\x00", false},
	} {
		err := ValidTenant(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidTenant(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTenant) {
			t.Errorf("ValidTenant(%q) = %v, want ErrInvalidTenant", tc.name, err)
		}
	}
}

func TestParseBearer(t *testing.T) {
	long := strings.Repeat("a", MaxTokenBytes)
	for _, tc := range []struct {
		name, header, want string
		err                error
	}{
		{"key", "Bearer lga_abc", "lga_abc", nil},
		{"lower case scheme", "bearer tok", "tok", nil},
		{"upper case scheme", "BEARER tok", "tok", nil},
		{"jwt", "Bearer eyJ.eyJ.sig-_", "eyJ.eyJ.sig-_", nil},
		{"padding", "Bearer abc+/==", "abc+/==", nil},
		{"longest", "Bearer " + long, long, nil},
		{"missing", "", "", ErrMissingCredentials},
		{"too long", "Bearer " + long + "a", "", ErrMalformed},
		{"scheme only", "Bearer", "", ErrMalformed},
		{"scheme and space", "Bearer ", "", ErrMalformed},
		{"basic", "Basic dXNlcjpwYXNz", "", ErrMalformed},
		{"no space", "Bearertok", "", ErrMalformed},
		{"two spaces", "Bearer  tok", "", ErrMalformed},
		{"tab", "Bearer\ttok", "", ErrMalformed},
		{"trailing space", "Bearer tok ", "", ErrMalformed},
		{"two tokens", "Bearer a b", "", ErrMalformed},
		{"comma", "Bearer a,b", "", ErrMalformed},
		{"quote", `Bearer "a"`, "", ErrMalformed},
		{"only padding", "Bearer ==", "", ErrMalformed},
		{"padding inside", "Bearer a=b", "", ErrMalformed},
		{"non-ASCII", "Bearer tök", "", ErrMalformed},
		{"control", "Bearer a\x01", "", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBearer(tc.header)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("ParseBearer = %q, %v; want error %v", got, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("ParseBearer = %q, want %q", got, tc.want)
			}
			if err != nil && len(tc.header) > 15 && strings.Contains(err.Error(), tc.header[7:]) {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	plain, id, _ := newKey()
	secret := plain[len(plain)-secretLen:]
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"fresh", plain, true},
		{"secret with - and _", "lga_abcdefgh2345_" + strings.Repeat("-", 42) + "A", true},
		{"empty", "", false},
		{"other prefix", "lgb" + plain[3:], false},
		{"upper case id", "lga_" + strings.ToUpper(id) + "_" + secret, false},
		{"id with 8", "lga_abcdefgh2348_" + secret, false},
		{"short id", "lga_" + id[1:] + "_" + secret + "A", false},
		{"no separator", "lga_" + id + "x" + secret, false},
		{"short secret", plain[:len(plain)-1], false},
		{"long secret", plain + "A", false},
		{"secret with padding", plain[:len(plain)-1] + "=", false},
		{"secret with +", plain[:len(plain)-1] + "+", false},
		// 43 base64url characters hold 258 bits: the last must leave the
		// two spare bits zero, so one key has one spelling.
		{"non-canonical secret", "lga_abcdefgh2345_" + strings.Repeat("A", 42) + "B", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotID, gotSecret, err := ParseKey(tc.token)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKey(%q) = %v, want ok %v", tc.token, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v is not ErrMalformed", err)
				}
				if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[17:]) {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if "lga_"+gotID+"_"+gotSecret != tc.token {
				t.Errorf("ParseKey(%q) = %q, %q: does not rebuild the token", tc.token, gotID, gotSecret)
			}
		})
	}
	if got, _, _ := ParseKey(plain); got != id {
		t.Errorf("id of a fresh key = %q, want %q", got, id)
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err       error
		status    int
		challenge string
	}{
		{ErrMissingCredentials, 401, `Bearer realm="lambdagent"`},
		{ErrMalformed, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrUnknownKey, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrRevoked, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrExpired, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrNotYetValid, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrBadSignature, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrUnknownKID, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrWrongIssuer, 401, `Bearer realm="lambdagent", error="invalid_token"`},
		{ErrWrongAudience, 403, `Bearer realm="lambdagent", error="insufficient_scope"`},
		{ErrForbidden, 403, `Bearer realm="lambdagent", error="insufficient_scope"`},
		{ErrJWKSUnavailable, 0, ""},
		{errors.New("redis: connection refused"), 0, ""},
	} {
		if got := Status(tc.err); got != tc.status {
			t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.status)
		}
		if got := Challenge(tc.err); got != tc.challenge {
			t.Errorf("Challenge(%v) = %q, want %q", tc.err, got, tc.challenge)
		}
	}
}
