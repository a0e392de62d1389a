package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// keys runs `lambdagent keys args…` as a process of its own with env and
// returns its standard output; it fails the test unless it exits 0.
func keys(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"keys"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lambdagent keys %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// createKey makes a key of tenant with `lambdagent keys create` and
// returns it and its id.
func createKey(t *testing.T, env []string, tenant string) (key, id string) {
	t.Helper()
	out := keys(t, env, "create", "-tenant", tenant, "-name", "test "+tenant)
	key = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	if !strings.HasPrefix(key, "lga_") {
		t.Fatalf("keys create printed %q, want a key first", out)
	}
	return key, key[len("lga_") : len("lga_")+12]
}

// reply is an answer of the API, its body decoded.
type reply struct {
	status    int
	challenge string
	body      map[string]any
}

// call sends a request with the given headers (name, value pairs).
func call(t *testing.T, method, url, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	if len(b) == 0 && resp.StatusCode == http.StatusNoContent {
		return r
	}
	if err := json.Unmarshal(b, &r.body); err != nil {
		t.Fatalf("%s %s: %d, body %q is not JSON", method, url, resp.StatusCode, b)
	}
	return r
}

// errorType is the JSON error shape's type, or "" when the body is not
// {"error":{"type":…,"message":…}} with a non-empty message.
func (r reply) errorType() string {
	e, ok := r.body["error"].(map[string]any)
	if !ok || len(r.body) != 1 {
		return ""
	}
	if msg, _ := e["message"].(string); msg == "" {
		return ""
	}
	typ, _ := e["type"].(string)
	return typ
}

// idp is an identity provider: a JWKS server and the key it signs with.
type idp struct {
	key *ecdsa.PrivateKey
	url string
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := func(n []byte) string { return base64.RawURLEncoding.EncodeToString(n) }
	raw, err := k.PublicKey.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		t.Fatal(err)
	}
	x, y := raw[1:33], raw[33:]
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": b(x), "y": b(y)},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	return &idp{key: k, url: srv.URL}
}

// token signs claims with ES256.
func (p *idp) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "k1"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, p.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestAuthOutcomes runs every kind of credential against real serve
// processes on one Redis: one in mode key, one in mode jwt with a local
// IdP. A refused request gets its status, a Bearer challenge and the JSON
// error shape, and writes nothing: its session is not found afterwards.
// The revoked key is revoked by another process (`lambdagent keys
// revoke`) while the server has it cached, and is refused within 5 s.
func TestAuthOutcomes(t *testing.T) {
	redisAddr := redistest.Start(t)
	simSrv := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(simSrv.Close)
	store := []string{"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t)}
	env := append([]string{"ANTHROPIC_API_KEY=test-key", "ANTHROPIC_BASE_URL=" + simSrv.URL}, store...)

	// The default tenant, whose store ids are the sessions' own: reading a
	// session back checks what the turn wrote, whatever the agent's
	// scoping of other tenants.
	good, _ := createKey(t, store, "default")
	doomed, doomedID := createKey(t, store, "default")
	keySrv := start(t, "serve", append(env, "LAMBDAGENT_AUTH=key")...)
	idp := newIDP(t)
	jwtSrv := start(t, "serve", append(env, "LAMBDAGENT_AUTH=jwt", "LAMBDAGENT_JWT_JWKS_URL="+idp.url,
		"LAMBDAGENT_JWT_ISSUER=https://idp.example", "LAMBDAGENT_JWT_AUDIENCE=lambdagent")...)

	// The doomed key works, and is cached; then another process revokes it.
	if r := call(t, "GET", "http://"+keySrv.addr+"/v1/sessions/none", "", "Authorization", "Bearer "+doomed); r.status != 404 {
		t.Fatalf("doomed key before revocation: %d %v, want 404", r.status, r.body)
	}
	keys(t, store, "revoke", doomedID)
	revoked := time.Now()
	for {
		r := call(t, "GET", "http://"+keySrv.addr+"/v1/sessions/none", "", "Authorization", "Bearer "+doomed)
		if r.status == 401 {
			break
		}
		if time.Since(revoked) > 5*time.Second {
			t.Fatalf("revoked key still answered %d after 5s", r.status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if list := keys(t, store, "list"); !strings.Contains(list, doomedID) || strings.Contains(list, doomed[len("lga_")+13:]) {
		t.Errorf("keys list shows no %s, or shows a secret:\n%s", doomedID, list)
	}

	now := time.Now().Unix()
	claims := func(aud string, exp int64) map[string]any {
		return map[string]any{"iss": "https://idp.example", "aud": aud, "sub": "u1", "tenant": "default", "exp": exp, "iat": now - 60}
	}
	unknown := "lga_" + strings.Repeat("a", 12) + good[len("lga_")+12:]
	const noCode, invalid, scope = `Bearer realm="lambdagent"`, `Bearer realm="lambdagent", error="invalid_token"`, `Bearer realm="lambdagent", error="insufficient_scope"`
	for _, tc := range []struct {
		name          string
		srv           *proc
		authorization []string // Authorization header values
		status        int
		typ           string
		challenge     string
	}{
		{"no key", keySrv, nil, 401, "unauthorized", noCode},
		{"malformed header", keySrv, []string{"Basic dXNlcjpwYXNz"}, 401, "unauthorized", invalid},
		{"two headers", keySrv, []string{"Bearer " + good, "Bearer " + good}, 401, "unauthorized", invalid},
		{"not a key", keySrv, []string{"Bearer lga_short"}, 401, "unauthorized", invalid},
		{"unknown key", keySrv, []string{"Bearer " + unknown}, 401, "unauthorized", invalid},
		{"revoked key", keySrv, []string{"Bearer " + doomed}, 401, "unauthorized", invalid},
		{"key in jwt mode", jwtSrv, []string{"Bearer " + good}, 401, "unauthorized", invalid},
		{"expired JWT", jwtSrv, []string{"Bearer " + idp.token(t, claims("lambdagent", now-3600))}, 401, "unauthorized", invalid},
		{"wrong audience", jwtSrv, []string{"Bearer " + idp.token(t, claims("another-app", now+3600))}, 403, "forbidden", scope},
		{"good key", keySrv, []string{"Bearer " + good}, 200, "", ""},
		{"good JWT", jwtSrv, []string{"Bearer " + idp.token(t, claims("lambdagent", now+3600))}, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "auth-" + strings.ReplaceAll(tc.name, " ", "-")
			var h []string
			for _, v := range tc.authorization {
				h = append(h, "Authorization", v)
			}
			r := call(t, "POST", "http://"+tc.srv.addr+"/agent", `{"session_id":"`+id+`","message":"hello"}`, h...)
			if tc.status == 200 {
				if r.status != 200 || r.body["session_id"] != id {
					t.Fatalf("POST /agent: %d %v, want 200 for session %s", r.status, r.body, id)
				}
			} else {
				got := []any{r.status, r.errorType(), r.challenge}
				if diff := cmp.Diff([]any{tc.status, tc.typ, tc.challenge}, got); diff != "" {
					t.Errorf("POST /agent: status, error type, WWW-Authenticate (-want +got):\n%s\nbody %v", diff, r.body)
				}
			}
			// The session exists only if the request was let in: read it
			// with a good key of the same tenant, on the key server.
			want := 404
			if tc.status == 200 {
				want = 200
			}
			if g := call(t, "GET", "http://"+keySrv.addr+"/v1/sessions/"+id, "", "Authorization", "Bearer "+good); g.status != want {
				t.Errorf("GET the session afterwards: %d %v, want %d", g.status, g.body, want)
			}
			if tc.status != 200 {
				// Reads and deletes are refused the same way.
				for _, method := range []string{"GET", "DELETE"} {
					if d := call(t, method, "http://"+tc.srv.addr+"/v1/sessions/auth-good-key", "", h...); d.status != tc.status {
						t.Errorf("%s a session: %d, want %d", method, d.status, tc.status)
					}
				}
			}
		})
	}
	if g := call(t, "GET", "http://"+keySrv.addr+"/v1/sessions/auth-good-key", "", "Authorization", "Bearer "+good); g.status != 200 {
		t.Errorf("a refused DELETE removed the session: %d %v", g.status, g.body)
	}
	// /healthz stays open; /metrics and /readyz are open by default.
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + keySrv.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 {
			t.Errorf("GET %s: 401, want it open", path)
		}
	}
}

// TestTenantFromCredentialOnly checks that a header cannot move a request
// to another tenant: with A's key and X-Tenant: B, A's kill switch and
// A's rate limit still apply, and B's sessions stay B's. serve refuses
// LAMBDAGENT_TENANT_HEADER outright in mode key.
func TestTenantFromCredentialOnly(t *testing.T) {
	redisAddr := redistest.Start(t)
	simSrv := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(simSrv.Close)
	store := []string{"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t)}
	keyA, _ := createKey(t, store, "tenant-a")
	keyB, _ := createKey(t, store, "default") // B's store ids are the bare session ids
	const admin = "admin-secret"
	env := append([]string{"ANTHROPIC_API_KEY=test-key", "ANTHROPIC_BASE_URL=" + simSrv.URL, "LAMBDAGENT_AUTH=key",
		"LAMBDAGENT_ADMIN_TOKEN=" + admin, "LAMBDAGENT_TENANT_RPM=2", "LAMBDAGENT_RATE_MAX_WAIT=50ms"}, store...)
	p := start(t, "serve", env...)
	base := "http://" + p.addr
	turn := func(key, session string, header ...string) reply {
		return call(t, "POST", base+"/agent", `{"session_id":"`+session+`","message":"hi"}`, append([]string{"Authorization", "Bearer " + key}, header...)...)
	}
	dodge := []string{"X-Tenant", "default", "X-Lambdagent-Tenant", "default", "Tenant", "default"}

	// Kill switch: A is stopped; A's key naming B in headers is still A.
	if r := call(t, "POST", base+"/v1/admin/stop", `{"tenant":"tenant-a"}`, "Authorization", "Bearer "+admin); r.status != 200 {
		t.Fatalf("stop tenant-a: %d %v", r.status, r.body)
	}
	if r := turn(keyA, "a1", dodge...); r.status != 403 || r.errorType() != "stopped" {
		t.Errorf("A's key with B's tenant headers while A is stopped: %d %v, want 403 stopped", r.status, r.body)
	}
	if r := turn(keyB, "b1"); r.status != 200 {
		t.Errorf("B while A is stopped: %d %v, want 200", r.status, r.body)
	}
	if r := call(t, "POST", base+"/v1/admin/resume", `{"tenant":"tenant-a"}`, "Authorization", "Bearer "+admin); r.status != 200 {
		t.Fatalf("resume tenant-a: %d %v", r.status, r.body)
	}

	// Rate limit: A's two requests a minute are spent, headers or not.
	for i := range 2 {
		if r := turn(keyA, "a1"); r.status != 200 {
			t.Fatalf("A's turn %d: %d %v", i+1, r.status, r.body)
		}
	}
	if r := turn(keyA, "a1", dodge...); r.status != 429 || r.errorType() != "rate_limited" {
		t.Errorf("A's third turn with B's tenant headers: %d %v, want 429 rate_limited", r.status, r.body)
	}
	if r := turn(keyB, "b1"); r.status != 200 {
		t.Errorf("B's second turn: %d %v, want 200 (A's turns are not B's)", r.status, r.body)
	}

	// Sessions: A's headers do not reach B's session.
	for _, method := range []string{"GET", "DELETE"} {
		if r := call(t, method, base+"/v1/sessions/b1", "", append([]string{"Authorization", "Bearer " + keyA}, dodge...)...); r.status != 404 && r.status != 204 {
			t.Errorf("%s B's session with A's key: %d %v, want 404", method, r.status, r.body)
		}
	}
	if r := call(t, "GET", base+"/v1/sessions/b1", "", "Authorization", "Bearer "+keyB); r.status != 200 || r.body["turns"] != 2.0 {
		t.Errorf("B's session after A's attempts: %d %v, want 200 with 2 turns", r.status, r.body)
	}

	// The header option itself is refused in mode key.
	var out bytes.Buffer
	err := run(t.Context(), []string{"serve"}, func(k string) string {
		return map[string]string{"ANTHROPIC_API_KEY": "x", "LAMBDAGENT_AUTH": "key", "LAMBDAGENT_TENANT_HEADER": "X-Tenant"}[k]
	}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "LAMBDAGENT_TENANT_HEADER") {
		t.Errorf("serve with LAMBDAGENT_TENANT_HEADER in mode key: %v, want an error naming it", err)
	}
}
