package ratelimit_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestKeyLimits checks an API key's own limits across two instances: a
// key with RPM 2 has its third call in a window refused, with a
// LimitError naming the key, while another key of the same tenant, and
// a call made with no key, still go through.
func TestKeyLimits(t *testing.T) {
	addr := redistest.Start(t)
	prefix := redistest.Prefix(t)
	ls := []*ratelimit.Limiter{
		newLimiter(t, addr, ratelimit.Config{Prefix: prefix, Window: time.Hour}),
		newLimiter(t, addr, ratelimit.Config{Prefix: prefix, Window: time.Hour}),
	}
	ctx := t.Context()
	limited := ratelimit.KeyLimits(auth.Limits{RPM: 2})
	type call struct {
		key    string
		limits ratelimit.Limits
	}
	var got []string
	for i, c := range []call{
		{"keyaaaaaaaaa", limited}, {"keyaaaaaaaaa", limited}, {"keyaaaaaaaaa", limited},
		{"keybbbbbbbbb", limited}, {"", ratelimit.Limits{}}, {"keyccccccccc", ratelimit.Limits{}},
	} {
		k := ratelimit.Key{Model: sonnet, Tenant: "acme", KeyID: c.key, KeyLimits: c.limits}
		r, _, err := ls[i%2].Reserve(ctx, k, ratelimit.Tokens{Input: 10, Output: 10})
		var le *ratelimit.LimitError
		switch {
		case err == nil:
			got = append(got, "ok")
			if err := r.Reconcile(ctx, claude.Usage{InputTokens: 5, OutputTokens: 5}, http.Header{}); err != nil {
				t.Fatal(err)
			}
		case errors.As(err, &le):
			got = append(got, le.Kind+" "+string(le.Scope)+" "+le.Name)
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	want := []string{"ok", "ok", "requests key keyaaaaaaaaa", "ok", "ok", "ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	if _, _, err := ls[0].Reserve(ctx, ratelimit.Key{Model: sonnet, KeyLimits: limited}, ratelimit.Tokens{}); !errors.Is(err, ratelimit.ErrInvalidKey) {
		t.Errorf("key limits without a key id: err = %v; want ErrInvalidKey", err)
	}
}

// TestKeyLimitsTurn runs turns whose context carries a key's principal,
// as the HTTP API's authentication leaves it: the model wrapper applies
// the key's limits, and the refusal is a 429 rate_limited.
func TestKeyLimitsTurn(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{limits: ratelimit.Config{
		Window:  time.Hour,
		MaxWait: time.Millisecond,
		Tenant:  ratelimit.Limits{Requests: 100}, // the limiter must be on for anything
	}})
	run := func(keyID string) error {
		ctx := auth.WithPrincipal(t.Context(), auth.Principal{Tenant: "acme", KeyID: keyID, Limits: auth.Limits{RPM: 2}, Method: auth.MethodKey})
		_, err := in.turns.Run(ctx, agent.Request{Tenant: "acme", SessionID: "s-" + keyID, Message: "hi"})
		return err
	}
	for i := range 2 {
		if err := run("keyaaaaaaaaa"); err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
	}
	err := run("keyaaaaaaaaa")
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || le.Scope != ratelimit.ScopeKey || le.Name != "keyaaaaaaaaa" {
		t.Fatalf("third turn: err = %v; want the key's LimitError", err)
	}
	if ae := le.APIError(); ae.Kind != apierr.RateLimited {
		t.Errorf("third turn: API error %+v; want rate_limited", ae)
	}
	if err := run("keybbbbbbbbb"); err != nil {
		t.Errorf("another key of the same tenant: %v", err)
	}
}
