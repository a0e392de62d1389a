package redact

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestHandlerComposes wraps a redacting handler in another: both sets of
// secrets are cut, and the record goes through one redacting layer.
func TestHandlerComposes(t *testing.T) {
	var buf bytes.Buffer
	var outer, inner Set
	inner.Add("first-secret")
	outer.Add("second-secret")
	h := Handler(Handler(slog.NewTextHandler(&buf, nil), inner.String), outer.String)
	if _, nested := h.(handler).h.(handler); nested {
		t.Error("Handler wrapped a redacting handler in another layer")
	}
	slog.New(h).Info("both first-secret and second-secret", "err", "second-secret and first-secret")
	if out := buf.String(); strings.Contains(out, "first-secret") || strings.Contains(out, "second-secret") || strings.Count(out, Mask) != 4 {
		t.Errorf("log line %q: want both secrets cut, twice each", out)
	}
}
