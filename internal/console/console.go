// Package console is lambdagent's console in the browser (see #18): a
// few static files embedded in the binary, served at /console on a port
// of its own, next to the HTTP API, which that port also serves so that
// the page's requests are same-origin (no CORS).
//
// The page is plain HTML, CSS and JavaScript modules: nothing to build,
// nothing fetched from elsewhere (no CDN, no web font), so it works on a
// machine or in a VPC without internet. It uses only the public HTTP
// API, as any client would, authenticated by the API key (or the admin
// token) that the user types: the page keeps it in sessionStorage and
// sends it in the Authorization header; never in a cookie (its requests
// carry none, so there is no CSRF surface) nor in a URL. A strict
// Content-Security-Policy keeps the page to its own scripts and origin.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed web
var files embed.FS

// Path is where the console is served.
const Path = "/console/"

// CSP is the Content-Security-Policy of the console's files: its own
// scripts, styles and API only; no inline script, no frame, no form
// posted anywhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console at [Path] and api everywhere else.
func Handler(api http.Handler) http.Handler {
	web, _ := fs.Sub(files, "web") // "web" is embedded: cannot fail
	static := http.StripPrefix(Path, http.FileServerFS(web))
	mux := http.NewServeMux()
	mux.Handle(Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") && r.URL.Path != Path {
			http.NotFound(w, r) // no directory listings
			return
		}
		static.ServeHTTP(w, r)
	}))
	mux.Handle("/console", http.RedirectHandler(Path, http.StatusMovedPermanently))
	mux.Handle("/", api)
	return mux
}
