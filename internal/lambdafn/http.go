package lambdafn

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// v1Request is the part of an API Gateway REST API (or HTTP API payload
// 1.0) event we use.
type v1Request struct {
	HTTPMethod                      string              `json:"httpMethod"`
	Path                            string              `json:"path"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	PathParameters                  map[string]string   `json:"pathParameters"`
	Body                            string              `json:"body"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
	RequestContext                  struct {
		DomainName string          `json:"domainName"`
		Authorizer json.RawMessage `json:"authorizer"`
		Identity   struct {
			SourceIP string `json:"sourceIp"`
		} `json:"identity"`
	} `json:"requestContext"`
}

// v2Request is the part of an API Gateway HTTP API (payload 2.0) or
// Function URL event we use.
type v2Request struct {
	RawPath         string            `json:"rawPath"`
	RawQueryString  string            `json:"rawQueryString"`
	Cookies         []string          `json:"cookies"`
	Headers         map[string]string `json:"headers"`
	PathParameters  map[string]string `json:"pathParameters"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	RequestContext  struct {
		DomainName string          `json:"domainName"`
		Stage      string          `json:"stage"`
		Authorizer json.RawMessage `json:"authorizer"`
		HTTP       struct {
			Method   string `json:"method"`
			SourceIP string `json:"sourceIp"`
		} `json:"http"`
	} `json:"requestContext"`
}

func decodeV1(payload []byte) (*http.Request, map[string]any, error) {
	var e v1Request
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: API Gateway v1 event: %v", ErrInvalidEvent, err)
	}
	header := http.Header{}
	if e.MultiValueHeaders != nil {
		for k, vs := range e.MultiValueHeaders {
			for _, v := range vs {
				header.Add(k, v)
			}
		}
	} else {
		for k, v := range e.Headers {
			header.Add(k, v)
		}
	}
	// The query arrives decoded; encode it again.
	query := url.Values(e.MultiValueQueryStringParameters)
	if query == nil {
		query = url.Values{}
		for k, v := range e.QueryStringParameters {
			query.Set(k, v)
		}
	}
	r, err := newRequest(e.HTTPMethod, e.Path, query.Encode(), header, e.Body, e.IsBase64Encoded,
		e.RequestContext.DomainName, e.RequestContext.Identity.SourceIP, e.PathParameters)
	return r, authorizer(e.RequestContext.Authorizer), err
}

// authorizer reads requestContext.authorizer as an object; anything else
// (absent, null, a string) is none. What it holds is auth's to judge.
func authorizer(raw json.RawMessage) map[string]any {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	return m
}

func decodeV2(payload []byte, k kind) (*http.Request, map[string]any, error) {
	var e v2Request
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: %v event: %v", ErrInvalidEvent, k, err)
	}
	header := http.Header{}
	for k, v := range e.Headers {
		header.Add(k, v) // repeated headers arrive joined with commas, which HTTP allows
	}
	if len(e.Cookies) > 0 {
		header.Set("Cookie", strings.Join(e.Cookies, "; "))
	}
	path := e.RawPath
	if stage := e.RequestContext.Stage; k == kindAPIGatewayV2 && stage != "" && stage != "$default" {
		// A named stage of an HTTP API prefixes rawPath; the routes do not
		// know it.
		if rest, ok := strings.CutPrefix(path, "/"+stage); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	r, err := newRequest(e.RequestContext.HTTP.Method, path, e.RawQueryString, header, e.Body, e.IsBase64Encoded,
		e.RequestContext.DomainName, e.RequestContext.HTTP.SourceIP, e.PathParameters)
	var authz map[string]any
	if k == kindAPIGatewayV2 { // a Function URL has no authorizer of API Gateway's
		authz = authorizer(e.RequestContext.Authorizer)
	}
	return r, authz, err
}

// newRequest builds the request the handler sees, as net/http's server
// would: Host moved out of the header, RequestURI and ContentLength set,
// RemoteAddr as host:port. Path parameters are set as path values; a
// ServeMux handler matches the path itself anyway.
func newRequest(method, path, rawQuery string, header http.Header, body string, b64 bool, domain, sourceIP string, params map[string]string) (*http.Request, error) {
	if method == "" {
		return nil, fmt.Errorf("%w: no HTTP method", ErrInvalidEvent)
	}
	data := []byte(body)
	if b64 {
		var err error
		if data, err = base64.StdEncoding.DecodeString(body); err != nil {
			return nil, fmt.Errorf("%w: body marked isBase64Encoded: %v", ErrInvalidEvent, err)
		}
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.ParseRequestURI(escapePath(path))
	if err != nil {
		return nil, fmt.Errorf("%w: path %q: %v", ErrInvalidEvent, path, err)
	}
	u.RawQuery = rawQuery
	r, err := http.NewRequestWithContext(context.Background(), method, "/", bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	r.URL = u
	r.Header = header
	r.Host = header.Get("Host")
	header.Del("Host")
	if r.Host == "" {
		r.Host = domain
	}
	r.RequestURI = u.RequestURI()
	if sourceIP != "" {
		r.RemoteAddr = net.JoinHostPort(sourceIP, "0")
	}
	for name, v := range params {
		r.SetPathValue(name, v)
	}
	return r, nil
}

// escapePath makes p a valid escaped URL path whether the source sent it
// percent-encoded (REST APIs, Function URLs) or decoded (HTTP APIs): it
// escapes only bytes that never stand literally in an escaped path, so an
// encoded path passes unchanged and a decoded '?' or '#' cannot split it.
// (A decoded path that contains "%41" is read as "A": the event cannot
// tell the two apart.)
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && ishex(p[i+1]) && ishex(p[i+2]):
			b.WriteByte(c)
		case c <= ' ' || c >= 0x7f || strings.IndexByte("%?#\"<>\\^`{|}", c) >= 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// v1Response is the REST API (and HTTP API payload 1.0) answer; headers go
// in multiValueHeaders only, so repeated ones (Set-Cookie) survive.
type v1Response struct {
	StatusCode        int                 `json:"statusCode"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders,omitempty"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// v2Response is the HTTP API payload 2.0 and Function URL answer: one
// value per header, Set-Cookie in cookies.
type v2Response struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers,omitempty"`
	Cookies         []string          `json:"cookies,omitempty"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

// httpResponse encodes the handler's answer for an HTTP event source.
// Content-Length and hop-by-hop headers are left out: API Gateway and the
// Function URL set their own.
func httpResponse(k kind, res result) ([]byte, error) {
	body, b64 := string(res.body), !textual(res.header, res.body)
	if b64 {
		body = base64.StdEncoding.EncodeToString(res.body)
	}
	header := res.header.Clone()
	for _, h := range []string{"Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive", "Trailer", "Upgrade"} {
		header.Del(h)
	}
	if k == kindAPIGatewayV1 {
		return json.Marshal(v1Response{StatusCode: res.code, MultiValueHeaders: header, Body: body, IsBase64Encoded: b64})
	}
	out := v2Response{StatusCode: res.code, Cookies: header.Values("Set-Cookie"), Body: body, IsBase64Encoded: b64}
	header.Del("Set-Cookie")
	if len(header) > 0 {
		out.Headers = make(map[string]string, len(header))
		for k, vs := range header {
			out.Headers[k] = strings.Join(vs, ", ")
		}
	}
	return json.Marshal(out)
}
