package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/console"
)

// TestHandler checks what the console's port serves: the page and its
// modules with the CSP, no directory listing, no method but GET, and the
// API for every other path.
func TestHandler(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.URL.Path) })
	srv := httptest.NewServer(console.Handler(api))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		status       int
		typ, body    string
		csp          bool
	}{
		{"GET", "/console/", 200, "text/html", `<script type="module" src="app.js">`, true},
		{"GET", "/console/app.js", 200, "text/javascript", "chatTransport", true},
		{"GET", "/console/api.js", 200, "text/javascript", "credentials: 'omit'", true},
		{"GET", "/console/style.css", 200, "text/css", "--accent", true},
		{"GET", "/console", 301, "", "", false},
		{"POST", "/console/", 405, "", "", true},
		{"GET", "/console/nope.js", 404, "", "", true},
		{"GET", "/v1/sessions", 200, "", "api /v1/sessions", false},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.typ) || !strings.Contains(string(b), tc.body) {
				t.Errorf("= %d %q %.80q; want %d %q containing %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status, tc.typ, tc.body)
			}
			if got := resp.Header.Get("Content-Security-Policy"); (got == console.CSP) != tc.csp {
				t.Errorf("CSP = %q; want it: %v", got, tc.csp)
			}
		})
	}
}

// TestNoExternalResources checks that the page loads nothing from
// another origin: no CDN, no web font, no inline script.
func TestNoExternalResources(t *testing.T) {
	srv := httptest.NewServer(console.Handler(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	for _, f := range []string{"index.html", "app.js", "api.js", "ui.js", "style.css"} {
		resp, err := http.Get(srv.URL + "/console/" + f)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := string(b)
		for _, bad := range []string{"https://", "http://", "@import", "<script>", "innerHTML", "localStorage", "document.cookie"} {
			if strings.Contains(s, bad) && !(bad == "http://" && strings.Contains(s, "http://www.w3.org/2000/svg")) {
				t.Errorf("%s contains %q", f, bad)
			}
		}
	}
}
