package lambdagent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// testKey returns an API key of tenant and its line of a key file.
func testKey(t *testing.T, id, tenant string) (key, line string) {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return "lga_" + id + "_" + secret, `{"id":"` + id + `","tenant":"` + tenant + `","sha256":"` + hex.EncodeToString(sum[:]) + `"}`
}

func TestNewRefusesOpenByAccident(t *testing.T) {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	_, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, DBPath: filepath.Join(t.TempDir(), "s.db"),
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "lambdagent keys create -tenant NAME") || !strings.Contains(err.Error(), "LAMBDAGENT_AUTH=none") {
		t.Fatalf("New with mode key and no key = %v; want the way out named", err)
	}
	var logs strings.Builder
	rt, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, DBPath: filepath.Join(t.TempDir(), "s.db"), Auth: "none",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "LAMBDAGENT_AUTH=none") {
		t.Errorf("mode none logged no warning:\n%s", logs.String())
	}
}

// TestRuntimeAuth checks the wiring New does: /mcp is authenticated and
// its ask_agent turns carry the caller's principal; /metrics and /readyz
// follow OpsAuth; /healthz is always open.
func TestRuntimeAuth(t *testing.T) {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	key, line := testKey(t, "aaaaaaaaaaaa", "acme")
	redis := redistest.Start(t) // the admin token's kill switch lives in Redis
	rt, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, RedisURL: redistest.URL(redis), RedisPrefix: redistest.Prefix(t),
		APIKeysFile: line + "\n", OpsAuth: "admin", AdminToken: "ops-secret", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(srv.Close)
	do := func(method, path, body string, header ...string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask_agent","arguments":{"session_id":"m1","message":"hello"}}}`
	if code, body := do("POST", "/mcp", call); code != 401 || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("/mcp without a key: %d %s, want a JSON 401", code, body)
	}
	code, body := do("POST", "/mcp", call, "Authorization", "Bearer "+key)
	var rpc struct {
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &rpc); code != 200 || err != nil || rpc.Result.IsError || len(rpc.Result.Content) == 0 || !strings.Contains(rpc.Result.Content[0].Text, "hello") {
		t.Errorf("/mcp ask_agent with a key: %d %s; want the turn's answer (the principal reached the tool)", code, body)
	}
	for _, path := range []string{"/metrics", "/readyz"} {
		if code, _ := do("GET", path, ""); code != 401 {
			t.Errorf("GET %s without the admin token under OpsAuth admin: %d, want 401", path, code)
		}
		if code, _ := do("GET", path, "", "Authorization", "Bearer "+key); code != 401 {
			t.Errorf("GET %s with an API key: %d, want 401 (it needs the admin token)", path, code)
		}
		if code, body := do("GET", path, "", "Authorization", "Bearer ops-secret"); code == 401 {
			t.Errorf("GET %s with the admin token: %d %s", path, code, body)
		}
	}
	if code, _ := do("GET", "/healthz", ""); code != 200 {
		t.Errorf("GET /healthz: %d, want 200 without credentials", code)
	}
}
