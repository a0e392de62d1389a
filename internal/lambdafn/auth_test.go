package lambdafn

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/auth"
)

// whoHandler answers who a request acts for, the way the HTTP API finds
// out: a principal the adapter put in the context is trusted; otherwise
// an Authenticator in mode apigw reads the authorizer context.
type whoHandler struct {
	authn *auth.Authenticator

	mu   sync.Mutex
	seen []who // guarded by mu
}

type who struct {
	Tenant string
	Method auth.Method
	Status int    // 0, or the refusal's status
	Body   string // what reached the handler
}

func (h *whoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := who{Body: string(body)}
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok {
		var err error
		if p, err = h.authn.Authenticate(r.Context(), r); err != nil {
			got.Status = auth.Status(err)
		}
	}
	got.Tenant, got.Method = p.Tenant, p.Method
	h.mu.Lock()
	h.seen = append(h.seen, got)
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}`))
}

func (h *whoHandler) take() []who {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seen
	h.seen = nil
	return s
}

// TestPrincipals checks what each event source tells the handler about
// its caller: API Gateway events carry their authorizer context (mode
// apigw trusts it), and never a trusted principal; a Function URL carries
// neither; SQS, EventBridge and direct turns, which IAM authenticated,
// carry a trusted principal of the event's tenant or the default one.
func TestPrincipals(t *testing.T) {
	authn, err := auth.New(auth.Config{Mode: auth.MethodAPIGateway})
	if err != nil {
		t.Fatal(err)
	}
	h := &whoHandler{authn: authn}
	f := newFunction(t, h, Config{DefaultTenant: "ops"})
	v2 := func(domain, authorizer string) string {
		return `{"version":"2.0","rawPath":"/agent","headers":{"content-type":"application/json","x-tenant":"evil"},
			"requestContext":{"domainName":"` + domain + `","http":{"method":"POST","sourceIp":"203.0.113.9"}` + authorizer + `},
			"body":"{\"session_id\":\"s1\",\"message\":\"hi\"}","isBase64Encoded":false}`
	}
	v1 := `{"httpMethod":"POST","path":"/agent","headers":{"Content-Type":"application/json"},
		"requestContext":{"domainName":"abc.execute-api.us-east-1.amazonaws.com","authorizer":{"principalId":"u7","tenant":"acme"}},
		"body":"{\"session_id\":\"s1\",\"message\":\"hi\"}"}`
	body := `{"session_id":"s1","message":"hi"}`
	for _, tc := range []struct {
		name     string
		payload  string
		want     []who
		wantType string // errorType of a failed invocation
	}{
		{"HTTP API JWT authorizer", v2("abc.execute-api.us-east-1.amazonaws.com", `,"authorizer":{"jwt":{"claims":{"tenant":"acme","sub":"u1"},"scopes":null}}`),
			[]who{{Tenant: "acme", Method: auth.MethodAPIGateway, Body: body}}, ""},
		{"HTTP API Lambda authorizer", v2("abc.execute-api.us-east-1.amazonaws.com", `,"authorizer":{"lambda":{"tenant":"acme"}}`),
			[]who{{Tenant: "acme", Method: auth.MethodAPIGateway, Body: body}}, ""},
		{"HTTP API without authorizer", v2("abc.execute-api.us-east-1.amazonaws.com", ``),
			[]who{{Status: 401, Body: body}}, ""},
		{"HTTP API authorizer without tenant", v2("abc.execute-api.us-east-1.amazonaws.com", `,"authorizer":{"jwt":{"claims":{"sub":"u1"}}}`),
			[]who{{Status: 403, Body: body}}, ""},
		{"HTTP API authorizer not an object", v2("abc.execute-api.us-east-1.amazonaws.com", `,"authorizer":"acme"`),
			[]who{{Status: 401, Body: body}}, ""},
		{"REST API Lambda authorizer", v1, []who{{Tenant: "acme", Method: auth.MethodAPIGateway, Body: body}}, ""},
		{"Function URL with IAM", v2("abc.lambda-url.us-east-1.on.aws", `,"authorizer":{"iam":{"accessKey":"AKIA","tenant":"acme"}}`),
			[]who{{Status: 401, Body: body}}, ""},
		{"direct with tenant", `{"session_id":"s1","message":"hi","tenant":"acme"}`,
			[]who{{Tenant: "acme", Method: auth.MethodIAM, Body: `{"message":"hi","session_id":"s1"}`}}, ""},
		{"direct without tenant", body, []who{{Tenant: "ops", Method: auth.MethodIAM, Body: body}}, ""},
		{"direct with a bad tenant", `{"session_id":"s1","message":"hi","tenant":"a/b"}`, nil, "lambdagent.invalid_event"},
		{"direct with a tenant not a string", `{"session_id":"s1","message":"hi","tenant":7}`, nil, "lambdagent.invalid_event"},
		{"EventBridge with tenant", `{"id":"e1","detail-type":"lambdagent.turn","source":"app","detail":{"session_id":"s1","message":"hi","tenant":"acme"}}`,
			[]who{{Tenant: "acme", Method: auth.MethodIAM, Body: `{"message":"hi","session_id":"s1"}`}}, ""},
		{"SQS: a bad tenant is listed, a good one runs", `{"Records":[
			{"messageId":"m1","eventSource":"aws:sqs","body":"{\"session_id\":\"s1\",\"message\":\"hi\",\"tenant\":\"\"}"},
			{"messageId":"m2","eventSource":"aws:sqs","body":"{\"session_id\":\"s2\",\"message\":\"hi\",\"tenant\":\"acme\"}"}]}`,
			[]who{{Tenant: "acme", Method: auth.MethodIAM, Body: `{"message":"hi","session_id":"s2"}`}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.Invoke(t.Context(), []byte(tc.payload))
			var ie messages.InvokeResponse_Error
			if tc.wantType != "" {
				if !asInvokeError(err, &ie) || ie.Type != tc.wantType {
					t.Fatalf("Invoke = %s, %v; want errorType %s", out, err, tc.wantType)
				}
			} else if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if diff := cmp.Diff(tc.want, h.take()); diff != "" {
				t.Errorf("what the handler saw (-want +got):\n%s", diff)
			}
			if tc.name == "SQS: a bad tenant is listed, a good one runs" {
				var res sqsResponse
				if err := json.Unmarshal(out, &res); err != nil || len(res.BatchItemFailures) != 1 || res.BatchItemFailures[0].ItemIdentifier != "m1" {
					t.Errorf("batch answer %s: want m1 listed (a poison record without a dead-letter URL goes to the queue's redrive)", out)
				}
			}
		})
	}
}

func asInvokeError(err error, ie *messages.InvokeResponse_Error) bool {
	e, ok := err.(messages.InvokeResponse_Error)
	if ok {
		*ie = e
	}
	return ok
}
