package apierr_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

func TestRequireJSON(t *testing.T) {
	tests := []struct {
		contentType string // "-" for none
		browser     string // a header a browser sends, "Name: value"; "" for curl and other clients
		ok          bool
	}{
		{"application/json", "", true},
		{"application/json; charset=utf-8", "", true},
		{"Application/JSON; Charset=UTF-8", "", true},
		{"application/json;charset=\"utf-8\"", "", true},
		{"application/json", "Origin: http://localhost:8080", true},
		{"application/json", "Sec-Fetch-Site: same-origin", true},
		// What curl -d sends, and a client that names no type: JSON
		// bodies from the command line (the README's quick start).
		{"-", "", true},
		{"", "", true},
		{"application/x-www-form-urlencoded", "", true},
		// The same from a browser: a page of any origin can send them
		// without asking first.
		{"-", "Origin: http://attacker.example", false},
		{"application/x-www-form-urlencoded", "Origin: http://attacker.example", false},
		{"application/x-www-form-urlencoded", "Sec-Fetch-Site: cross-site", false},
		{"text/plain", "", false},
		{"text/plain; charset=utf-8", "", false},
		{"text/plain", "Origin: http://attacker.example", false},
		{"multipart/form-data; boundary=x", "", false},
		{"application/json; charset=latin1", "", false},
		{"application/jsonx", "", false},
		{"application/merge-patch+json", "", false},
		{"application/json; =", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.contentType+" "+tc.browser, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/agent", strings.NewReader("{}"))
			if tc.contentType != "-" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			if name, value, ok := strings.Cut(tc.browser, ": "); ok {
				r.Header.Set(name, value)
			}
			e := apierr.RequireJSON(r)
			if tc.ok {
				if e != nil {
					t.Fatalf("RequireJSON = %v, want nil", e)
				}
				return
			}
			if e == nil {
				t.Fatal("RequireJSON = nil, want 415")
			}
			if e.Kind != apierr.UnsupportedMediaType || e.StatusCode() != 415 || !strings.Contains(e.Message, "application/json") {
				t.Errorf("RequireJSON = %+v, want unsupported_media_type naming application/json", e)
			}
		})
	}
}

func FuzzRequireJSON(f *testing.F) {
	for _, s := range []string{"application/json", "application/json; charset=utf-8", "text/plain", "application/json; charset=\"", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header["Content-Type"] = []string{ct}
		r.Header.Set("Origin", "http://attacker.example") // the strict case
		e := apierr.RequireJSON(r)
		if e == nil {
			return
		}
		if e.Kind != apierr.UnsupportedMediaType || strings.Contains(e.Message, ct) && len(ct) > 16 {
			t.Fatalf("RequireJSON(%q) = %+v: want 415 that does not echo the header", ct, e)
		}
	})
}
