package lambdafn

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sqsPeer is the smallest SQS endpoint the SDK accepts for SendMessage:
// the JSON 1.0 protocol with a correct MD5 of the body. A queue URL
// containing "missing" answers QueueDoesNotExist.
type sqsPeer struct {
	URL string

	mu sync.Mutex
	// guarded by mu
	sent []sentMessage
}

// sentMessage is one SendMessage the peer accepted; Attributes maps a
// name to "DataType=StringValue".
type sentMessage struct {
	QueueURL   string
	Body       string
	Attributes map[string]string
	GroupID    string
	DedupID    string
	Delay      int
}

func startSQSPeer(t *testing.T) *sqsPeer {
	p := &sqsPeer{}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *sqsPeer) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#%s","message":%q}`, typ, msg)
	}
	if got := r.Header.Get("X-Amz-Target"); got != "AmazonSQS.SendMessage" {
		fail(400, "InvalidAction", "unexpected target "+got)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
		fail(403, "AccessDenied", "request not signed with the test credentials")
		return
	}
	var in struct {
		QueueUrl               string
		MessageBody            string
		MessageAttributes      map[string]struct{ DataType, StringValue string }
		MessageGroupId         string
		MessageDeduplicationId string
		DelaySeconds           int
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(400, "InvalidParameterValue", err.Error())
		return
	}
	if strings.Contains(in.QueueUrl, "missing") {
		fail(400, "QueueDoesNotExist", "The specified queue does not exist.")
		return
	}
	m := sentMessage{QueueURL: in.QueueUrl, Body: in.MessageBody, Attributes: map[string]string{},
		GroupID: in.MessageGroupId, DedupID: in.MessageDeduplicationId, Delay: in.DelaySeconds}
	for k, v := range in.MessageAttributes {
		m.Attributes[k] = v.DataType + "=" + v.StringValue
	}
	p.mu.Lock()
	p.sent = append(p.sent, m)
	n := len(p.sent)
	p.mu.Unlock()
	sum := md5.Sum([]byte(in.MessageBody))
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	fmt.Fprintf(w, `{"MessageId":"reply-%d","MD5OfMessageBody":%q}`, n, hex.EncodeToString(sum[:]))
}

// Sent returns the messages accepted so far, in order.
func (p *sqsPeer) Sent() []sentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// client returns an SQS client for the peer, built as cmd/lambdagent
// builds it.
func (p *sqsPeer) client(t *testing.T) SQSClient {
	t.Helper()
	c, err := NewSQSClient(SQSClientConfig{Region: "us-east-1", AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", SessionToken: "token", Endpoint: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
