package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The default tenant's request hash is the one from before tenants, so
// idempotency records and pending marks stored then still match; every
// other tenant's differs (see #13).
func TestRequestHashTenant(t *testing.T) {
	old := sha256.Sum256([]byte("s1\x00hi"))
	before := hex.EncodeToString(old[:16])
	for _, tc := range []struct {
		tenant string
		same   bool
	}{
		{"", true},
		{"default", true},
		{"acme", false},
		{"s1", false},
	} {
		got := requestHash(Request{Tenant: tc.tenant, SessionID: "s1", Message: "hi"})
		if (got == before) != tc.same {
			t.Errorf("tenant %q: hash %s, pre-tenant hash %s; want same=%v", tc.tenant, got, before, tc.same)
		}
	}
	if a, b := requestHash(Request{Tenant: "a", SessionID: "s1", Message: "hi"}), requestHash(Request{Tenant: "b", SessionID: "s1", Message: "hi"}); a == b {
		t.Errorf("tenants a and b have the same hash %s", a)
	}
}
