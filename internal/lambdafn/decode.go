package lambdafn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/lambdagent/lambdagent/internal/auth"
)

// kind is the source of an event.
type kind int

const (
	kindAPIGatewayV1 kind = iota + 1 // REST API, or HTTP API with payload format 1.0
	kindAPIGatewayV2                 // HTTP API, payload format 2.0
	kindFunctionURL                  // Lambda Function URL (the 2.0 shape)
	kindSQS
	kindEventBridge
	kindDirect // Invoke with {"session_id","message"}
)

func (k kind) String() string {
	switch k {
	case kindAPIGatewayV1:
		return "apigateway-v1"
	case kindAPIGatewayV2:
		return "apigateway-v2"
	case kindFunctionURL:
		return "function-url"
	case kindSQS:
		return "sqs"
	case kindEventBridge:
		return "eventbridge"
	case kindDirect:
		return "invoke"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// event is a decoded payload: exactly one of http, records and turn is set.
type event struct {
	kind kind
	http *http.Request // API Gateway and Function URL
	// authorizer is the API Gateway event's requestContext.authorizer,
	// nil when there is none (or it is not an object); for mode apigw.
	authorizer map[string]any
	records    []sqsRecord // SQS; never empty
	turn       turn        // EventBridge and direct
	// run is a workflow event (EventBridge and direct) instead of a turn.
	run *runJob
}

// decode detects the event source of payload by its top-level keys and
// decodes it. Errors wrap ErrUnknownEvent, ErrUnsupportedEvent or
// ErrInvalidEvent. Only the fields used are decoded, so that a field we
// do not read (authorizer claims, client certificates) cannot fail an
// event.
func decode(payload []byte) (*event, error) {
	k, err := detect(payload)
	if err != nil {
		return nil, err
	}
	ev := &event{kind: k}
	switch k {
	case kindAPIGatewayV1:
		ev.http, ev.authorizer, err = decodeV1(payload)
	case kindAPIGatewayV2, kindFunctionURL:
		ev.http, ev.authorizer, err = decodeV2(payload, k)
	case kindSQS:
		ev.records, err = decodeSQS(payload)
	case kindEventBridge:
		ev.turn, ev.run, err = decodeEventBridge(payload)
	case kindDirect:
		var job runJob
		var ok bool
		if job, ok, err = parseRunJob(payload); ok {
			ev.run = &job
		} else if err == nil {
			ev.turn, err = parseTurn(payload, "invoke")
		}
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// detect tells the event source from the payload's top-level keys.
func detect(payload []byte) (kind, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return 0, fmt.Errorf("%w: payload is not a JSON object", ErrUnknownEvent)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return 0, fmt.Errorf("%w: payload: %v", ErrInvalidEvent, err)
	}
	has := func(key string) bool { _, ok := top[key]; return ok }
	switch {
	case has("Records"):
		return kindSQS, nil // decodeSQS rejects records of other sources
	case has("requestContext"):
		var rc map[string]json.RawMessage
		if err := json.Unmarshal(top["requestContext"], &rc); err != nil {
			return 0, fmt.Errorf("%w: requestContext: %v", ErrInvalidEvent, err)
		}
		_, elb := rc["elb"]
		_, connection := rc["connectionId"]
		_, http2 := rc["http"]
		var version string
		_ = json.Unmarshal(top["version"], &version) // absent or not a string: not 2.0
		switch {
		case elb:
			return 0, fmt.Errorf("%w: Application Load Balancer requests", ErrUnsupportedEvent)
		case connection:
			return 0, fmt.Errorf("%w: API Gateway WebSocket events", ErrUnsupportedEvent)
		case has("httpMethod"):
			return kindAPIGatewayV1, nil
		case version == "2.0" && http2:
			var domain string
			_ = json.Unmarshal(rc["domainName"], &domain)
			if strings.Contains(domain, ".lambda-url.") {
				return kindFunctionURL, nil
			}
			return kindAPIGatewayV2, nil
		}
		return 0, fmt.Errorf("%w: requestContext without httpMethod or a 2.0 requestContext.http", ErrUnsupportedEvent)
	case has("detail-type") && has("source") && has("detail"):
		return kindEventBridge, nil
	case has("session_id"), has("workflow"), has("lambdagent"):
		return kindDirect, nil
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 8 {
		keys = append(keys[:8], "…")
	}
	return 0, fmt.Errorf("%w: top-level keys %q; want an API Gateway, Function URL, SQS or EventBridge event, {\"session_id\",\"message\"} or {\"workflow\",\"input\"}", ErrUnknownEvent, keys)
}

// decodeEventBridge reads an EventBridge event whose detail is the turn:
// {"session_id","message"} and optionally reply_to and idempotency_key;
// or a workflow start {"workflow","input","idempotency_key"}.
func decodeEventBridge(payload []byte) (turn, *runJob, error) {
	var e struct {
		ID     string          `json:"id"`
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return turn{}, nil, fmt.Errorf("%w: EventBridge event: %v", ErrInvalidEvent, err)
	}
	if e.ID == "" {
		return turn{}, nil, fmt.Errorf("%w: EventBridge event without id", ErrInvalidEvent)
	}
	if job, ok, err := parseRunJob(e.Detail); err != nil {
		return turn{}, nil, fmt.Errorf("EventBridge event %s detail: %w", e.ID, err)
	} else if ok {
		if job.workflow != "" && job.key == "" {
			job.key = "eventbridge:" + e.ID
		}
		return turn{}, &job, nil
	}
	t, err := parseTurn(e.Detail, "eventbridge")
	if err != nil {
		return turn{}, nil, fmt.Errorf("EventBridge event %s detail: %w", e.ID, err)
	}
	if t.key == "" {
		// EventBridge delivers at least once, each time with the same id.
		t.key = "eventbridge:" + e.ID
	}
	return t, nil, nil
}

// parseTurn reads the control fields of a POST /agent body: session_id
// (to order turns), reply_to, idempotency_key and tenant (taken out of
// the body: they are the adapter's, not the API's). A tenant that fails
// auth.ValidTenant is an ErrInvalidEvent: the turn never runs. A body that is not a JSON
// object is passed on as is, for the handler to answer 400 with its own
// message; only control fields of the wrong type are an error here.
func parseTurn(raw []byte, source string) (turn, error) {
	t := turn{body: raw, source: source}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return t, nil
	}
	_ = json.Unmarshal(fields["session_id"], &t.sessionID) // the handler judges it
	strip := false
	_, hasTenant := fields["tenant"]
	for name, dst := range map[string]*string{"reply_to": &t.replyTo, "idempotency_key": &t.key, "tenant": &t.tenant} {
		v, ok := fields[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return turn{}, fmt.Errorf("%w: %s must be a string", ErrInvalidEvent, name)
		}
		delete(fields, name)
		strip = true
	}
	if hasTenant {
		if err := auth.ValidTenant(t.tenant); err != nil {
			return turn{}, fmt.Errorf("%w: tenant: %v", ErrInvalidEvent, err)
		}
	}
	if strip {
		b, err := json.Marshal(fields)
		if err != nil {
			return turn{}, fmt.Errorf("%w: re-encode body: %v", ErrInvalidEvent, err)
		}
		t.body = b
	}
	return t, nil
}
