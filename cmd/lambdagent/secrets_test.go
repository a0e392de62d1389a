package main

// The secrets test of #13: a real `lambdagent serve` is given secrets in
// every variable that can hold one and driven through good and failing
// paths; nothing it writes (stdout, stderr) and no answer it sends may
// show one of them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// secretsRun collects everything a test's processes write and every
// answer they send, and the secrets none of it may show.
type secretsRun struct {
	t       *testing.T
	secrets []string

	mu      sync.Mutex
	written []string // "what: text"; guarded by mu
}

func (r *secretsRun) saw(what, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, what+": "+text)
}

// call sends a request and records its answer, whose status it returns.
func (r *secretsRun) call(method, url, body string, header map[string]string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var hdr bytes.Buffer
	resp.Header.Write(&hdr)
	r.saw(method+" "+url, resp.Status+"\n"+hdr.String()+string(b))
	return resp.StatusCode, string(b)
}

// check fails the test for every secret found in what was written.
func (r *secretsRun) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.written {
		for _, s := range r.secrets {
			if strings.Contains(w, s) {
				r.t.Errorf("secret %q shown in %s", s, w)
			}
		}
	}
}

// agentTurn is the body of a turn.
func agentTurn(session, msg string) string {
	b, _ := json.Marshal(map[string]string{"session_id": session, "message": msg})
	return string(b)
}

func TestNoSecretWritten(t *testing.T) {
	// Secrets long and distinct enough that a hit is no coincidence, and
	// URL-safe, so that their escaped form is the same.
	const (
		apiKey      = "sk-ant-api03-secretKeyAAAA1111"
		adminToken  = "admin-secret-BBBB2222"
		redisPW     = "redis-secret-CCCC3333"
		mcpToken    = "mcp-secret-DDDD4444"
		mcpURLPW    = "mcpurl-secret-EEEE5555"
		basePW      = "baseurl-secret-FFFF6666"
		badRedisPW  = "badescape-secret-GGGG7777%zz"
		wrongPW     = "wrongpass-secret-HHHH8888"
		otelHeader  = "otel-secret-IIII9999"
		badBasePass = "badbase-secret-JJJJ0000%zz"
	)
	run := &secretsRun{t: t, secrets: []string{apiKey, adminToken, redisPW, mcpToken, mcpURLPW, basePW,
		strings.TrimSuffix(badRedisPW, "%zz"), wrongPW, otelHeader, strings.TrimSuffix(badBasePass, "%zz")}}
	t.Cleanup(run.check)

	srv := redistest.StartServer(t)
	rdb := redistest.Client(t, srv.Addr)
	if err := rdb.ConfigSet(context.Background(), "requirepass", redisPW).Err(); err != nil {
		t.Fatal(err)
	}
	peer := newMCPPeer(t, "shop")
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	closed := freeAddr(t) // nothing listens here
	mcpConfig := fmt.Sprintf(`{"mcpServers": {
		"shop": {"url": %q, "headers": {"Authorization": "Bearer %s"}},
		"gone": {"url": "http://user:%s@%s/mcp", "headers": {"Authorization": "Bearer %s"}}}}`,
		peer.url(), mcpToken, mcpURLPW, closed, mcpToken)
	withUser := func(u, pw string) string { return strings.Replace(u, "http://", "http://user:"+pw+"@", 1) }
	env := func(redisURL, baseURL string) []string {
		return []string{
			"LAMBDAGENT_AUTH=none",
			"LAMBDAGENT_LOG_LEVEL=debug", // the most there is to leak
			"REDIS_URL=" + redisURL,
			"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
			"ANTHROPIC_API_KEY=" + apiKey,
			"ANTHROPIC_BASE_URL=" + baseURL,
			"LAMBDAGENT_ADMIN_TOKEN=" + adminToken,
			"LAMBDAGENT_MCP_CONFIG=" + mcpConfig,
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + closed,
			"OTEL_EXPORTER_OTLP_HEADERS=x-api-key=" + otelHeader,
		}
	}
	goodRedis := fmt.Sprintf("redis://:%s@%s/0", redisPW, srv.Addr)

	t.Run("startup errors", func(t *testing.T) {
		tests := []struct {
			name, redisURL, baseURL, wantVar string
		}{
			{"bad REDIS_URL escape", "redis://u:" + badRedisPW + "@" + srv.Addr, sim.URL, "REDIS_URL"},
			{"bad ANTHROPIC_BASE_URL escape", goodRedis, "http://u:" + badBasePass + "@" + strings.TrimPrefix(sim.URL, "http://"), "ANTHROPIC_BASE_URL"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				cmd := exec.Command(binary, "serve")
				cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LAMBDAGENT_ADDR=" + freeAddr(t)}, env(tc.redisURL, tc.baseURL)...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				run.saw(tc.name+" stdout", stdout.String())
				run.saw(tc.name+" stderr", stderr.String())
				if err == nil {
					t.Fatalf("serve started; stderr:\n%s", &stderr)
				}
				if !strings.Contains(stderr.String(), tc.wantVar) {
					t.Errorf("startup error does not name %s:\n%s", tc.wantVar, &stderr)
				}
			})
		}
	})

	t.Run("serving", func(t *testing.T) {
		p := start(t, "serve", env(goodRedis, withUser(sim.URL, basePW))...)
		base := "http://" + p.addr
		t.Cleanup(func() { p.stop(t); run.saw("serve output", p.out.String()) })

		code, body := run.call("POST", base+"/agent", agentTurn("s1", `[[tool echo {"message":"hi"}]]`), nil)
		if code != 200 || !strings.Contains(body, "hi") {
			t.Fatalf("tool turn: %d %s", code, body)
		}
		if got := peer.sent(); len(got) == 0 {
			t.Fatal("the MCP server saw no request")
		}
		code, body = run.call("POST", base+"/agent", agentTurn("s1", `[[tool nosuch {}]]`), nil)
		if code != 200 {
			t.Errorf("unknown tool turn: %d %s", code, body)
		}
		code, _ = run.call("GET", base+"/v1/sessions/s1", "", nil)
		if code != 200 {
			t.Errorf("GET session: %d", code)
		}
		for _, auth := range []string{"", "Bearer wrong-token", "Bearer " + adminToken + "x", "Basic " + adminToken} {
			code, body := run.call("POST", base+"/v1/admin/stop", `{}`, map[string]string{"Authorization": auth})
			if code != http.StatusUnauthorized {
				t.Errorf("admin call with Authorization %q: %d %s, want 401", auth, code, body)
			}
		}
		code, body = run.call("GET", base+"/v1/usage?tenant=default", "", map[string]string{"Authorization": "Bearer nope-nope"})
		if code != http.StatusUnauthorized {
			t.Errorf("usage with a wrong token: %d %s, want 401", code, body)
		}
		run.call("GET", base+"/readyz", "", nil)
		run.call("GET", base+"/metrics", "", nil)
		run.call("POST", base+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nosuch"}}`, nil)

		// Redis dies under the server: turns answer 503.
		srv.Kill()
		code, body = run.call("POST", base+"/agent", agentTurn("s2", "hello"), nil)
		if code != http.StatusServiceUnavailable {
			t.Errorf("turn with Redis down: %d %s, want 503", code, body)
		}
		code, _ = run.call("GET", base+"/readyz", "", nil)
		if code != http.StatusServiceUnavailable {
			t.Errorf("readyz with Redis down: %d, want 503", code)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ConfigSet(context.Background(), "requirepass", redisPW).Err(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("wrong Redis password", func(t *testing.T) {
		// A refused password is a configuration to fix: serve checks it
		// with a PING at startup and stops, saying why (#17), and says
		// nothing more.
		cmd := exec.Command(binary, "serve")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LAMBDAGENT_ADDR=" + freeAddr(t), "LAMBDAGENT_AUTH=none"},
			env(fmt.Sprintf("redis://:%s@%s/0", wrongPW, srv.Addr), sim.URL)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("serve with a wrong Redis password did not stop at startup:\n%s", out)
		}
		run.saw("serve output", string(out))
		if err == nil {
			t.Errorf("serve with a wrong Redis password exited 0; want a startup error")
		}
		if !strings.Contains(string(out), "WRONGPASS") && !strings.Contains(string(out), "NOAUTH") {
			t.Errorf("the startup error does not say why Redis refused:\n%s", out)
		}
	})

	t.Run("Claude errors", func(t *testing.T) {
		tests := []struct {
			name string
			cfg  claudesim.Config
			want int
		}{
			{"401", claudesim.Config{APIKey: "sk-ant-another-key"}, http.StatusBadGateway},
			{"500", claudesim.Config{Rate500: 1}, http.StatusBadGateway},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				bad := httptest.NewServer(claudesim.New(tc.cfg))
				t.Cleanup(bad.Close)
				p := start(t, "serve", env(goodRedis, withUser(bad.URL, basePW))...)
				t.Cleanup(func() { p.stop(t); run.saw("serve output", p.out.String()) })
				code, body := run.call("POST", "http://"+p.addr+"/agent", agentTurn("s4", "hello"), nil)
				if code != tc.want {
					t.Errorf("turn: %d %s, want %d", code, body, tc.want)
				}
			})
		}
	})
}

// TestSecretsManager starts serve with its Claude key, Redis URL and admin
// token only in a Secrets Manager secret (a local server speaking its JSON
// protocol), and with an ARN that does not exist.
func TestSecretsManager(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lambdagent-AbCdEf"
	const adminToken = "admin-from-secret-KKKK1111"
	srv := redistest.StartServer(t)
	sim := httptest.NewServer(claudesim.New(claudesim.Config{APIKey: "sk-ant-from-secret-LLLL2222"}))
	t.Cleanup(sim.Close)
	secret, _ := json.Marshal(map[string]string{
		"ANTHROPIC_API_KEY":      "sk-ant-from-secret-LLLL2222",
		"REDIS_URL":              redistest.URL(srv.Addr),
		"LAMBDAGENT_ADMIN_TOKEN": adminToken,
		"LAMBDAGENT_MODEL":       "overridden-by-the-environment",
	})
	sm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Method != "POST" || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || in.SecretId != arn {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ARN": arn, "Name": "lambdagent", "SecretString": string(secret), "VersionId": "v1"})
	}))
	t.Cleanup(sm.Close)
	env := func(arn string) []string {
		return []string{
			"LAMBDAGENT_AUTH=none",
			"LAMBDAGENT_SECRETS_ARN=" + arn,
			"AWS_REGION=eu-west-1",
			"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
			"AWS_SECRET_ACCESS_KEY=aws-secret-MMMM3333",
			"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + sm.URL,
			"ANTHROPIC_BASE_URL=" + sim.URL,
			"LAMBDAGENT_MODEL=" + claudesim.Models()[0].ID,
			"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		}
	}

	p := start(t, "serve", env(arn)...)
	base := "http://" + p.addr
	code, body, err := postTurn(base, "sm1", "hello", "")
	if err != nil || code != 200 {
		t.Fatalf("turn with the key from the secret: %d %s %v\n%s", code, body, err, p.out)
	}
	if n, _ := redistest.Client(t, srv.Addr).DBSize(context.Background()).Result(); n == 0 {
		t.Error("nothing was written to the Redis named in the secret")
	}
	req, _ := http.NewRequest("GET", base+"/v1/usage?session_id=sm1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("usage with the admin token from the secret: %d", resp.StatusCode)
	}

	cmd := exec.Command(binary, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LAMBDAGENT_ADDR=" + freeAddr(t)}, env(arn+"-gone")...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started with an unknown secret:\n%s", out)
	}
	if !strings.Contains(string(out), arn+"-gone") || !strings.Contains(string(out), "ResourceNotFoundException") {
		t.Errorf("startup error does not name the ARN and the cause:\n%s", out)
	}
	for _, s := range []string{"LLLL2222", "KKKK1111", "MMMM3333"} {
		if strings.Contains(string(out)+p.out.String(), s) {
			t.Errorf("output shows secret %s", s)
		}
	}
}
