package apierr

import (
	"mime"
	"net/http"
	"strings"
)

// RequireJSON checks that a request with a JSON body says so: its
// Content-Type must be application/json, with no charset or charset
// utf-8. Otherwise it returns an [UnsupportedMediaType] error (415) that
// says what to send.
//
// One exception keeps the quick start's `curl -d '{…}' …/agent` working:
// a client that is not a browser (no Origin and no Sec-Fetch-Site header)
// may send no Content-Type or curl's default,
// application/x-www-form-urlencoded; the body must still be a JSON
// object, which the decoder checks.
//
// Why (see #13): a web page may send a "simple" cross-origin POST
// (text/plain, form encodings) without a CORS preflight, so an API that
// reads any body as JSON can be driven by any page a user of a local
// server visits. Every browser marks its POSTs with Origin or
// Sec-Fetch-Site, and from a browser only application/json, which is not
// a simple type, is accepted: the browser asks first, and we never say
// yes. text/plain, multipart and other types are refused from anyone.
func RequireJSON(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	browser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
	if ct == "" {
		if !browser {
			return nil
		}
		return &Error{Kind: UnsupportedMediaType, Message: "Content-Type is missing; send the JSON body with Content-Type: application/json"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/x-www-form-urlencoded" && !browser {
		return nil // curl -d's default; the body is still decoded as JSON
	}
	if err != nil || mt != "application/json" {
		return &Error{Kind: UnsupportedMediaType, Message: "Content-Type must be application/json"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &Error{Kind: UnsupportedMediaType, Message: "JSON bodies must be UTF-8: send Content-Type: application/json (charset utf-8 or none)"}
	}
	return nil
}
