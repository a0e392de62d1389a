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
// Why (see #13): a web page may send a "simple" cross-origin POST
// (text/plain, form encodings) without a CORS preflight, so an API that
// reads any body as JSON can be driven by any page a user of a local
// server visits. application/json is not a simple type: a browser asks
// first, and we never say yes.
func RequireJSON(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return &Error{Kind: UnsupportedMediaType, Message: "Content-Type is missing; send the JSON body with Content-Type: application/json"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &Error{Kind: UnsupportedMediaType, Message: "Content-Type must be application/json"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &Error{Kind: UnsupportedMediaType, Message: "JSON bodies must be UTF-8: send Content-Type: application/json (charset utf-8 or none)"}
	}
	return nil
}
